//! TODO
use std::sync::Arc;
use hyper::Response;
use super::{Body, Req, router::{Format, Target}};
use crate::{Cluster, error::ApiError};
pub fn list(_c: &Arc<Cluster>, _r: &Req, _t: &Target, _f: Format) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
pub fn get(_c: &Arc<Cluster>, _r: &Req, _t: &Target, _f: Format) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
pub fn create(_c: &Arc<Cluster>, _r: &Req, _t: &Target) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
pub fn replace(_c: &Arc<Cluster>, _r: &Req, _t: &Target) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
pub fn patch(_c: &Arc<Cluster>, _r: &Req, _t: &Target) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
pub fn delete(_c: &Arc<Cluster>, _r: &Req, _t: &Target) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
pub fn delete_collection(_c: &Arc<Cluster>, _r: &Req, _t: &Target) -> Result<Response<Body>, ApiError> { Err(ApiError::method_not_allowed()) }
