//! The fastest thing hyper 1.x can do: answer every request `204 No Content`
//! on two tokio workers. A baseline for the load tests in `BENCHMARKS.md`:
//! whatever Headcount costs above this is Headcount's own work (routing,
//! parsing, depersonalizing, queueing, metrics), not HTTP.
//!
//! ```sh
//! cargo run --release --example bare_hyper -- 127.0.0.1:45082
//! wrk -t2 -c128 -d10s 'http://127.0.0.1:45082/p.gif?d=example.com&u=https%3A%2F%2Fexample.com%2F'
//! ```
//!
//! HTTP/1.1 only, keep-alive, `TCP_NODELAY`, like Headcount's listener.

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:45082".to_owned()).parse()?;
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("bare hyper listening on http://{addr}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req: Request<Incoming>| async {
                let mut r = Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                *r.status_mut() = StatusCode::NO_CONTENT;
                Ok::<_, Infallible>(r)
            });
            let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
