//! What the listener serves: every request enters here. Model calls under `/llm/` go
//! straight to the metering proxy — its hot path crosses no router and no middleware
//! stack — and everything else to the API's router. Both are counted in the metrics under
//! a route pattern, never a raw path, and both refuse paths that are not UTF-8 once decoded.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower_service::Service;
use wsd_core::registry::Protocol;

use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::proxy::{self, Proxy};
use crate::{code, decodes_to_utf8};

/// The server's one service: the proxy beside the API.
#[derive(Debug, Clone)]
pub struct App {
    api: Router,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
}

impl App {
    pub(crate) fn new(api: Router, proxy: Arc<Proxy>, metrics: Arc<Metrics>) -> Self {
        Self { api, proxy, metrics }
    }
}

type Proxied = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<B> Service<Request<B>> for App
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Proxied, <Router as Service<Request<Body>>>::Future>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let request = request.map(Body::new);
        match proxy::surface(request.uri().path()) {
            Some((surface, route)) => Either::Left(Box::pin(proxied(self.proxy.clone(), self.metrics.clone(), surface, route, request))),
            None => Either::Right(self.api.call(request)),
        }
    }
}

async fn proxied(
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    surface: Protocol,
    route: &'static str,
    request: Request<Body>,
) -> Result<Response, Infallible> {
    let started = Instant::now();
    let method = metrics::method_label(request.method());
    let response = if decodes_to_utf8(request.uri().path()) {
        proxy.call(surface, request).await
    } else {
        ApiError::bad_request(code::INVALID_PATH, "the path is not UTF-8 once decoded").into_response()
    };
    metrics.record_request(method, route, response.status().as_u16(), started.elapsed());
    Ok(response)
}
