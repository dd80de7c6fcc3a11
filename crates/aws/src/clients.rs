//! Every AWS client, built once per cold start (implemented by the AWS adapters work).
pub struct AwsClients;
