//! The SIP UDP socket's kernel buffers.

use tokio::net::UdpSocket;

/// Receive and send buffer asked for the SIP UDP socket. The kernel default (~208 KiB on
/// Linux, about 160 INVITEs with SDP) overflowed at 300 call set-ups per second while the
/// endpoint task was busy (BENCHMARKS.md §2); 4 MiB absorbs a burst of several thousand.
/// The kernel caps it at `net.core.rmem_max`/`wmem_max`, which is logged.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Ask for `bytes` of socket buffer each way; say so when the kernel grants less.
pub(super) fn enlarge_buffers(socket: &UdpSocket, bytes: usize) {
    let sock = socket2::SockRef::from(socket);
    // Linux reports twice what it grants (the doubling covers its bookkeeping).
    let reported = |granted: usize| {
        if cfg!(target_os = "linux") {
            granted / 2
        } else {
            granted
        }
    };
    let recv = sock
        .set_recv_buffer_size(bytes)
        .and_then(|()| sock.recv_buffer_size());
    let send = sock
        .set_send_buffer_size(bytes)
        .and_then(|()| sock.send_buffer_size());
    match (recv, send) {
        (Ok(r), Ok(s)) if reported(r) >= bytes && reported(s) >= bytes => {
            tracing::debug!(bytes, "sip socket buffers set");
        }
        (Ok(r), Ok(s)) => tracing::info!(
            asked = bytes,
            receive = reported(r),
            send = reported(s),
            "sip socket buffers capped by the kernel; raise net.core.rmem_max and \
             net.core.wmem_max to absorb bursts of calls"
        ),
        (r, s) => tracing::warn!(
            receive = ?r.err(),
            send = ?s.err(),
            "sip socket buffers could not be set"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel allows an unprivileged `SO_RCVBUF`/`SO_SNDBUF` (Linux).
    fn kernel_max(name: &str) -> Option<usize> {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    #[tokio::test]
    async fn the_sip_socket_gets_the_buffers_the_kernel_allows_up_to_4_mib() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sock = socket2::SockRef::from(&socket);
        let before = sock.recv_buffer_size().unwrap();
        enlarge_buffers(&socket, SOCKET_BUFFER_BYTES);
        let (Some(rmax), Some(wmax)) = (kernel_max("rmem_max"), kernel_max("wmem_max")) else {
            return; // not Linux: nothing to compare with
        };
        // Linux reports twice the granted size.
        let recv = sock.recv_buffer_size().unwrap() / 2;
        let send = sock.send_buffer_size().unwrap() / 2;
        assert_eq!(
            recv,
            SOCKET_BUFFER_BYTES.min(rmax),
            "receive buffer (was {before})"
        );
        assert_eq!(send, SOCKET_BUFFER_BYTES.min(wmax), "send buffer");
    }
}
