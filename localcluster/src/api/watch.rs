//! TODO
use std::sync::Arc;
use hyper::Response;
use super::{Body, Req, router::{Format, Target}};
use crate::{Cluster, error::ApiError};
pub fn serve(_c: &Arc<Cluster>, _r: &Req, _t: &Target, _f: Format) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
