//! Any datagram on an RTP port: RTP header parse, telephone-event parse and the DTMF
//! receiver, G.711 decode of the payload. Nothing may panic.
#![no_main]

use hotline_gateway::media::dtmf::{DtmfReceiver, TelephoneEvent};
use hotline_gateway::media::{rtp, Codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rx = DtmfReceiver::new();
    if let Ok(pkt) = rtp::parse(data) {
        if let Ok(ev) = TelephoneEvent::parse(pkt.payload) {
            let _ = rx.on_event(pkt.timestamp, &ev);
            assert_eq!(TelephoneEvent::parse(&ev.to_bytes()), Ok(ev));
        }
        let mut pcm = [0i16; 2048];
        let n = pkt.payload.len().min(pcm.len());
        Codec::Pcma.decode(&pkt.payload[..n], &mut pcm[..n]);
    }
    // the same bytes as a bare telephone-event payload
    let _ = TelephoneEvent::parse(data);
});
