//! One exec session over a WebSocket: the Kubernetes channel framing (binary frames, or
//! base64 text frames), standard input in (closed by v5's close signal), output out, and the
//! closing Status on the error channel, worded as the kubelet words it (v4 and older) or as
//! kube-apiserver's stream translator does (v5, kubectl >= 1.30).

use base64::Engine;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::process::ChildStdin;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::kubelet::exec::{self, Container, Exec, ExecError, ExecSpec, STDERR, STDOUT};
use crate::kubelet::ExitInfo;

/// The error channel (the closing Status).
const ERROR: u8 = 3;
/// The largest message a client may send (stdin chunks, resize events).
const MAX_IN: usize = 1024 * 1024;

/// A Kubernetes channel subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v5.channel.k8s.io`: v4 plus the close signal (channel 255).
    V5,
    /// `v4.channel.k8s.io` (`v4.base64.channel.k8s.io`): the Status as JSON.
    V4 { base64: bool },
    /// `channel.k8s.io` (`base64.channel.k8s.io`, or none named): the error as text.
    V1 { base64: bool },
}

impl Protocol {
    /// kubectl's protocol.
    pub const V5_NAME: &'static str = "v5.channel.k8s.io";

    /// The protocol of a `Sec-WebSocket-Protocol` name, with the name to answer.
    pub fn from_name(name: &str) -> Option<(Protocol, &'static str)> {
        let all: [(&'static str, Protocol); 5] = [
            (Self::V5_NAME, Protocol::V5),
            ("v4.channel.k8s.io", Protocol::V4 { base64: false }),
            ("v4.base64.channel.k8s.io", Protocol::V4 { base64: true }),
            ("channel.k8s.io", Protocol::V1 { base64: false }),
            ("base64.channel.k8s.io", Protocol::V1 { base64: true }),
        ];
        all.into_iter()
            .find(|(n, _)| *n == name)
            .map(|(n, p)| (p, n))
    }

    fn base64(self) -> bool {
        matches!(
            self,
            Protocol::V4 { base64: true } | Protocol::V1 { base64: true }
        )
    }
}

/// What one session runs: where, what, and in which protocol.
#[derive(Debug)]
pub struct Session {
    /// The negotiated protocol.
    pub protocol: Protocol,
    /// The command and its streams.
    pub spec: ExecSpec,
    /// The running container, or why the kubelet refused (a translated v5 stream reports
    /// that on the error channel).
    pub target: Result<Container, String>,
}

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

/// Runs the session on the upgraded connection `io` until the command ends, the client goes
/// away (the command is then killed) or the cluster stops.
pub async fn run<S>(io: S, session: Session, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_IN))
        .max_frame_size(Some(MAX_IN));
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (mut sink, stream) = ws.split();
    let p = session.protocol;
    // The kubelet's "connection established": an empty message on the lowest output channel.
    let first = match (session.spec.stdout, session.spec.stderr) {
        (true, _) => STDOUT,
        (false, true) => STDERR,
        _ => ERROR,
    };
    if send(&mut sink, p, first, &[]).await.is_err() {
        return;
    }
    let status = match session.target {
        Err(refused) => internal(&format!("unable to upgrade connection: {refused}")),
        Ok(container) => match exec::start(&container, &session.spec).await {
            Err(e) => start_failed(p, &e),
            Ok(proc) => match pump(proc, &mut sink, stream, p, &shutdown).await {
                Some(info) => exit_status(p, &session.spec.argv, info),
                None => return,
            },
        },
    };
    let _ = write_status(&mut sink, p, &status).await;
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(close))).await;
    let _ = sink.close().await;
}

/// Copies output to the client and the client's input to the command until the command has
/// exited and its output is drained. `None` when the client went away or the cluster stops
/// (dropping `proc` then kills the command).
async fn pump<S>(
    mut proc: Exec,
    sink: &mut Sink<S>,
    stream: SplitStream<WebSocketStream<S>>,
    p: Protocol,
    shutdown: &CancellationToken,
) -> Option<ExitInfo>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let gone = CancellationToken::new();
    let input = tokio::spawn(read_input(stream, proc.stdin.take(), p, gone.clone()));
    let _stop_input = AbortOnDrop(input);
    loop {
        tokio::select! {
            chunk = proc.output.recv() => match chunk {
                Some((ch, data)) => send(sink, p, ch, &data).await.ok()?,
                None => break,
            },
            _ = gone.cancelled() => return None,
            _ = shutdown.cancelled() => return None,
        }
    }
    tokio::select! {
        info = &mut proc.exit => info.ok(),
        _ = gone.cancelled() => None,
        _ = shutdown.cancelled() => None,
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The client's messages (binary or text frames alike, or base64 text frames): stdin data
/// (channel 0), v5's close of stdin (255, 0); resize
/// events (channel 4) are accepted and have no effect (no terminal). Cancels `gone` when
/// the client closes or the connection breaks.
async fn read_input<S>(
    mut stream: SplitStream<WebSocketStream<S>>,
    mut stdin: Option<ChildStdin>,
    p: Protocol,
    gone: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = stream.next().await {
        let frame = match msg {
            Message::Binary(b) => b.to_vec(),
            Message::Text(t) if p.base64() => match decode_base64(t.as_str()) {
                Some(f) => f,
                None => continue,
            },
            // The kubelet reads a text frame's bytes as a binary frame's (the Python client
            // sends `str` stdin so: the channel as a character, then the text).
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Close(_) => break,
            _ => continue,
        };
        let Some((&ch, data)) = frame.split_first() else {
            continue;
        };
        match ch {
            0 => {
                if let Some(s) = stdin.as_mut() {
                    if s.write_all(data).await.is_err() || s.flush().await.is_err() {
                        stdin = None;
                    }
                }
            }
            255 if p == Protocol::V5 && data == [0] => stdin = None,
            _ => {}
        }
    }
    gone.cancel();
}

/// A base64 frame: the channel as an ASCII digit, then the data in base64.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let (first, rest) = text.as_bytes().split_first()?;
    let ch = first.checked_sub(b'0')?;
    let mut out = vec![ch];
    out.extend(
        base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?,
    );
    Some(out)
}

async fn send<S>(sink: &mut Sink<S>, p: Protocol, ch: u8, data: &[u8]) -> Result<(), ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let msg = if p.base64() {
        let mut t = String::from(char::from(b'0' + ch));
        t.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
        Message::text(t)
    } else {
        let mut b = Vec::with_capacity(data.len() + 1);
        b.push(ch);
        b.extend_from_slice(data);
        Message::binary(b)
    };
    sink.send(msg).await.map_err(|_| ())
}

/// The Status on the error channel: JSON from v4 on; before, the message of a failure only.
async fn write_status<S>(sink: &mut Sink<S>, p: Protocol, status: &Value) -> Result<(), ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match p {
        Protocol::V1 { .. } if status["status"] == "Success" => Ok(()),
        Protocol::V1 { .. } => {
            let message = status["message"].as_str().unwrap_or("").as_bytes();
            send(sink, p, ERROR, message).await
        }
        _ => {
            send(
                sink,
                p,
                ERROR,
                &serde_json::to_vec(status).unwrap_or_default(),
            )
            .await
        }
    }
}

/// `apierrors.NewInternalError` as JSON.
fn internal(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// A command that could not start: the kubelet's Status; through the translator (v5) that
/// Status's message wrapped once more.
fn start_failed(p: Protocol, e: &ExecError) -> Value {
    let runtime = match e {
        ExecError::NotRunning => {
            "failed to exec in container: container is in CONTAINER_EXITED state".to_owned()
        }
        ExecError::Start(m) => m.clone(),
    };
    let kubelet = internal(&format!("error executing command in container: {runtime}"));
    match p {
        Protocol::V5 => internal(kubelet["message"].as_str().unwrap_or("")),
        _ => kubelet,
    }
}

/// The closing Status for an exit: Success, or `NonZeroExitCode` with the code as its cause.
fn exit_status(p: Protocol, argv: &[String], info: ExitInfo) -> Value {
    let code = info.exit_code;
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    let error = match p {
        // The translator's SPDY client saw the kubelet's status and words the exit itself.
        Protocol::V5 => format!("command terminated with exit code {code}"),
        _ => format!(
            "error executing command [{}], exit code {code}",
            argv.join(" ")
        ),
    };
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: {error}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_worded_as_the_kubelet_and_the_translator_do() {
        let argv = vec!["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        let three = ExitInfo {
            exit_code: 3,
            signal: None,
        };
        let v4 = exit_status(Protocol::V4 { base64: false }, &argv, three);
        assert_eq!(
            serde_json::to_string(&v4).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let v5 = exit_status(Protocol::V5, &argv, three);
        assert_eq!(
            v5["message"],
            "command terminated with non-zero exit code: command terminated with exit code 3"
        );
        let ok = ExitInfo {
            exit_code: 0,
            signal: None,
        };
        assert_eq!(
            serde_json::to_string(&exit_status(Protocol::V5, &argv, ok)).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
    }

    #[test]
    fn base64_frames_carry_the_channel_as_a_digit() {
        assert_eq!(decode_base64("0aGk=").unwrap(), vec![0, b'h', b'i']);
        assert!(decode_base64("").is_none());
        assert_eq!(
            Protocol::from_name("v4.base64.channel.k8s.io"),
            Some((Protocol::V4 { base64: true }, "v4.base64.channel.k8s.io"))
        );
        assert!(Protocol::from_name("v3.channel.k8s.io").is_none());
    }
}
