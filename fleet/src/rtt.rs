//! `flotilla-fleet rtt-proxy`: a TCP proxy in front of one API server that makes it as
//! far away as a cluster in another region (`up --rtt NAME=250ms`). TLS passes through
//! untouched (the client still checks the API server's certificate, which names
//! 127.0.0.1, the proxy's address too).
//!
//! Each direction is a delay line of RTT/2: every chunk read is written on after half
//! the round-trip time, in order, without waiting for the chunk before it to arrive (so
//! a long answer streams as it would over a long link: latency, not a bandwidth limit).
//! A new connection costs one round trip more before its first byte goes on, as the TCP
//! handshake does over a real link (the client's connect returns at once on loopback).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A round-trip time from the command line: `150ms`, `0.25s`, `1s`, `0` (none).
pub fn parse_rtt(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a round-trip time such as 150ms or 0.3s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "" if value == 0.0 => 0.0,
        _ => {
            return Err(format!(
                "{text:?}: expected a round-trip time such as 150ms or 0.3s (unit ms or s)"
            ))
        }
    };
    if !(0.0..=10.0).contains(&seconds) {
        return Err(format!("{text:?}: a round-trip time from 0 to 10s"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Forwards every connection to `listen` to `upstream`, each direction delayed by
/// `rtt / 2`. Runs until the process is stopped.
pub async fn run(listen: SocketAddr, upstream: SocketAddr, rtt: Duration) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        let accepted = Instant::now();
        tokio::spawn(async move {
            if let Err(e) = relay(client, upstream, rtt, accepted).await {
                tracing::debug!("connection: {e}");
            }
        });
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    rtt: Duration,
    accepted: Instant,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let half = rtt / 2;
    // The handshake's round trip: nothing the client sends goes on before it.
    let handshake = accepted + rtt;
    let up = delay_line(client_read, server_write, half, Some(handshake));
    let down = delay_line(server_read, client_write, half, None);
    // One direction ending (a close) ends the other once its queue is written.
    let _ = tokio::join!(up, down);
    Ok(())
}

/// Copies `from` to `to`, each chunk written `delay` after it was read (and not before
/// `not_before`): a reader task fills a queue of (due, bytes), this task writes them in
/// order when due. A closed reader shuts the writer down after its last chunk.
async fn delay_line(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    not_before: Option<Instant>,
) -> std::io::Result<()> {
    let (queue, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = Instant::now();
                    let start = not_before.map_or(now, |t| t.max(now));
                    if queue.send((start + delay, buffer[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    while let Some((at, bytes)) = due.recv().await {
        tokio::time::sleep_until(at).await;
        if to.write_all(&bytes).await.is_err() {
            break;
        }
    }
    reader.abort();
    to.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::parse_rtt;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Through the proxy, an echo's first answer takes the handshake's round trip and
    /// its own; the next ones one round trip each, the bytes unchanged and in order.
    #[tokio::test]
    async fn each_exchange_through_the_proxy_costs_a_round_trip() {
        let rtt = Duration::from_millis(100);
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = echo.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            loop {
                let n = conn.read(&mut buffer).await.unwrap();
                if n == 0 {
                    break;
                }
                conn.write_all(&buffer[..n]).await.unwrap();
            }
        });
        let listen = {
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            free.local_addr().unwrap()
        };
        tokio::spawn(super::run(listen, upstream, rtt));
        // The first exchange is timed from before the connection (the proxy holds its
        // bytes for the handshake's round trip from when it accepted it).
        let mut started = tokio::time::Instant::now();
        let mut client = loop {
            if let Ok(c) = tokio::net::TcpStream::connect(listen).await {
                break c;
            }
            tokio::task::yield_now().await;
        };
        for (i, expected) in [rtt * 2, rtt, rtt].into_iter().enumerate() {
            let message = format!("exchange {i}");
            if i > 0 {
                started = tokio::time::Instant::now();
            }
            client.write_all(message.as_bytes()).await.unwrap();
            let mut answer = vec![0u8; message.len()];
            client.read_exact(&mut answer).await.unwrap();
            let took = started.elapsed();
            assert_eq!(answer, message.as_bytes());
            assert!(took >= expected, "exchange {i} took {took:?}");
        }
    }

    #[test]
    fn round_trip_times_are_read_in_ms_or_s() {
        assert_eq!(parse_rtt("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse_rtt("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_rtt("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_rtt("0"), Ok(Duration::ZERO));
        for bad in ["150", "fast", "1m", "-5ms", "11s", ""] {
            assert!(parse_rtt(bad).is_err(), "{bad}");
        }
    }
}
