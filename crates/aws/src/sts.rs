//! Implemented by the AWS adapters work.
