//! The CloudFormation custom-resource protocol, with a responder that always answers.
//!
//! CloudFormation invokes the function with a request ([`request::Request`]) and waits for one
//! HTTP PUT of a JSON body ([`response::Response`]) to a presigned S3 URL. No answer means a
//! stack that hangs until the resource's ServiceTimeout (an hour by default). This crate makes
//! sure every invocation answers exactly once:
//! - [`responder::answer`]: runs the resource's handler and answers on success, on error, on
//!   panic, and a few seconds before the invocation's deadline;
//! - [`response`]: the body, always within CloudFormation's 4096 bytes, `Reason` truncated and
//!   never dropped;
//! - [`transport::ResponseSender`]: the PUT, with an empty Content-Type, verified TLS and retries;
//! - [`properties::PropertyReader`]: properties as CloudFormation sends them (every scalar a
//!   string), validated before anything is touched, with errors that name the property.
//!
//! - [`recorder::ResponseRecorder`]: a loopback stand-in for the presigned URL, for tests and
//!   the local demo.
//!
//! Nothing here knows what the resource does; the provisioner implements
//! [`responder::CustomResource`].

pub mod properties;
pub mod recorder;
pub mod request;
pub mod responder;
pub mod response;
pub mod transport;

pub use properties::PropertyReader;
pub use request::{Request, RequestType, ResponseUrl};
pub use responder::{Answered, Context, CustomResource, Failure, Success, answer, is_not_created_physical_id, not_created_physical_id};
pub use response::{MAX_BODY_BYTES, Response, Status};
pub use transport::{Delivery, DeliveryError, ResponseSender, RetryPolicy};
