//! A fast fake LLM provider for load benchmarks of the metering proxy:
//!
//!   cargo run --release -p wsd-server --example fake_provider -- 127.0.0.1:9000
//!
//! `POST /anthropic/v1/messages` and `POST /openai/chat/completions` answer at once with a
//! fixed answer that carries usage — a JSON document, or with `"stream": true` in the
//! request, a short event stream: in one write, or with `"split": true` too, one write per
//! event, as real providers send them. It does as little work as it can, so that a
//! benchmark measures what sits in front of it.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

const MESSAGE: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"MiniMax-M2.7","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","usage":{"input_tokens":25,"output_tokens":12}}"#;

const MESSAGE_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello! How can\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" I help you today?\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":12}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

const CHAT: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":25,"completion_tokens":12}}"#;

const CHAT_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-bench\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello!\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":25,\"completion_tokens\":12}}\n\n",
    "data: [DONE]\n\n",
);

fn answer(body: &str, plain: &'static str, stream: &'static str) -> Response {
    if body.contains("\"split\":true") {
        // Each event its own write: the body yields between them.
        let events = futures_util::stream::unfold(stream.split_inclusive("\n\n"), |mut events| async move {
            let event = events.next()?;
            tokio::task::yield_now().await;
            Some((Ok::<_, std::io::Error>(axum::body::Bytes::from_static(event.as_bytes())), events))
        });
        ([("content-type", "text/event-stream")], Body::from_stream(events)).into_response()
    } else if body.contains("\"stream\":true") {
        ([("content-type", "text/event-stream")], Body::from(stream)).into_response()
    } else {
        ([("content-type", "application/json")], Body::from(plain)).into_response()
    }
}

#[tokio::main]
async fn main() {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let app = axum::Router::new()
        .route("/anthropic/v1/messages", post(|body: String| async move { answer(&body, MESSAGE, MESSAGE_STREAM) }))
        .route("/openai/chat/completions", post(|body: String| async move { answer(&body, CHAT, CHAT_STREAM) }));
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    println!("fake provider listening on http://{}", listener.local_addr().expect("address"));
    // Small writes go out at once, as a provider's would.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.expect("serve");
}
