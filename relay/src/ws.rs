//! The server's half of a push WebSocket after the upgrade (RFC 6455),
//! only as much as a push subscriber needs: outgoing text frames encoded
//! once per publish and shared by every subscriber ([`text_frame`]: a
//! server's frames are unmasked, so the bytes are the same for all), and a
//! reader that accepts control frames only (ping, pong, close) and refuses
//! everything else. The profile of issue 21 showed the fan-out spending
//! its own time per subscriber on copying the payload and framing it again;
//! now a delivery is one write of shared bytes into the TLS stream, which
//! makes one TLS record of it.

use bytes::{BufMut, Bytes, BytesMut};

const FIN: u8 = 0x80;
pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The largest control frame a client may send: 2 header bytes, the
/// 4-byte mask and at most 125 bytes of payload.
pub const MAX_CONTROL_FRAME: usize = 2 + 4 + 125;

/// One unfragmented, unmasked frame (server to client).
pub fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut b = BytesMut::with_capacity(len + 10);
    b.put_u8(FIN | opcode);
    if len < 126 {
        b.put_u8(len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        b.put_u8(126);
        b.put_u16(l);
    } else {
        b.put_u8(127);
        b.put_u64(len as u64);
    }
    b.put_slice(payload);
    b.freeze()
}

/// A text message as one frame.
pub fn text_frame(text: &str) -> Bytes {
    frame(OP_TEXT, text.as_bytes())
}

/// What a subscriber sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    /// Answer with a pong carrying the same bytes.
    Ping(Vec<u8>),
    Pong,
    /// The client closes (its status code, if any, to echo back).
    Close(Vec<u8>),
}

/// Why a subscriber's frame ends its connection.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Data frames, continuation frames, reserved bits or opcodes: a
    /// subscriber may only send control frames.
    #[error("not a control frame")]
    NotControl,
    #[error("control frame unmasked, fragmented or over 125 bytes")]
    Malformed,
}

/// Takes the first whole frame off the front of `buf` (the bytes read so
/// far). `Ok(None)`: not complete yet, read more (a complete control frame
/// never exceeds [`MAX_CONTROL_FRAME`], so a buffer of that size always
/// suffices). Data frames are refused from their first two bytes, before
/// any payload is read.
pub fn take_control(buf: &mut Vec<u8>) -> Result<Option<Control>, Refused> {
    let [b0, b1, ..] = buf[..] else {
        return Ok(None);
    };
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 || !matches!(opcode, OP_CLOSE | OP_PING | OP_PONG) {
        return Err(Refused::NotControl);
    }
    let len = usize::from(b1 & 0x7F);
    if b0 & FIN == 0 || b1 & 0x80 == 0 || len > 125 {
        return Err(Refused::Malformed);
    }
    let total = 2 + 4 + len;
    if buf.len() < total {
        return Ok(None);
    }
    let mask = [buf[2], buf[3], buf[4], buf[5]];
    let payload: Vec<u8> = buf[6..total]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    buf.drain(..total);
    Ok(Some(match opcode {
        OP_PING => Control::Ping(payload),
        OP_PONG => Control::Pong,
        _ => Control::Close(payload.get(..2).map(<[u8]>::to_vec).unwrap_or_default()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    use tokio_tungstenite::tungstenite::Message;

    fn masked(opcode_byte: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut v = vec![opcode_byte, 0x80 | payload.len() as u8];
        v.extend(mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    #[test]
    fn control_frames_are_taken_whole_and_everything_else_refused() {
        let mut buf = masked(0x89, b"hi");
        buf.extend(masked(0x8A, b""));
        let mut first = buf[..3].to_vec();
        assert_eq!(take_control(&mut first), Ok(None), "incomplete");
        assert_eq!(
            take_control(&mut buf),
            Ok(Some(Control::Ping(b"hi".to_vec())))
        );
        assert_eq!(take_control(&mut buf), Ok(Some(Control::Pong)));
        assert!(buf.is_empty());
        let mut close = masked(0x88, &[0x03, 0xE8, b'x']);
        assert_eq!(
            take_control(&mut close),
            Ok(Some(Control::Close(vec![0x03, 0xE8])))
        );
        for bad in [
            masked(0x81, b"hello"),
            masked(0x82, b"b"),
            masked(0x80, b""),
        ] {
            assert_eq!(take_control(&mut bad.clone()), Err(Refused::NotControl));
        }
        let mut unmasked = vec![0x89, 0x00];
        assert_eq!(take_control(&mut unmasked), Err(Refused::Malformed));
        let mut fragmented = masked(0x09, b"");
        assert_eq!(take_control(&mut fragmented), Err(Refused::Malformed));
        let mut rsv = masked(0xC9, b"");
        assert_eq!(take_control(&mut rsv), Err(Refused::NotControl));
        let mut long = vec![0x89, 0x80 | 126, 0, 200];
        assert_eq!(take_control(&mut long), Err(Refused::Malformed));
    }

    /// The shared frames, as a real WebSocket client (tungstenite) reads
    /// them: every length encoding.
    #[tokio::test]
    async fn a_real_client_reads_the_shared_frames() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            client,
            Role::Client,
            Some(WebSocketConfig::default()),
        )
        .await;
        let texts = ["{}".to_string(), "あ".repeat(100), "x".repeat(70_000)];
        for t in &texts {
            server.write_all(&text_frame(t)).await.expect("write");
        }
        for t in &texts {
            match ws.next().await {
                Some(Ok(Message::Text(got))) => assert_eq!(got.as_str(), t),
                other => panic!("{other:?}"),
            }
        }
        // And its ping reaches the reader as a control frame.
        ws.send(Message::Ping(b"p".to_vec().into()))
            .await
            .expect("ping");
        let mut buf = vec![0u8; MAX_CONTROL_FRAME];
        let n = server.read(&mut buf).await.expect("read");
        buf.truncate(n);
        assert_eq!(
            take_control(&mut buf),
            Ok(Some(Control::Ping(b"p".to_vec())))
        );
    }
}
