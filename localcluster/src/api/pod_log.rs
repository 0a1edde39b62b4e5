//! TODO
use std::sync::Arc;
use hyper::Response;
use super::{Body, Req, router::Target};
use crate::{Cluster, error::ApiError};
pub async fn serve(_c: &Arc<Cluster>, _r: &Req, _t: &Target) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
