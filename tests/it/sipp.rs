//! sipp as the caller: an independent SIP implementation placing a call with a pcap of
//! caller audio and RFC 4733 digits, checked through the call record and the recording.

use super::audio::{chunks_found, read_wav_8k, through_g711};
use super::harness::{free_udp_port, peer_available, repo, GatewayProcess};
use super::tickets_common::{assert_valid, schema, Intake, Reply};
use hotline_gateway::media::Codec;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One RTP packet at a time offset, for the pcap.
struct Packet {
    at_ms: u64,
    rtp: Vec<u8>,
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x5eed_1234u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The caller's stream: silence, digit `menu`, silence, the message, `#`, silence.
fn caller_stream(menu: u8, dtmf_at_ms: u64, speak_at_ms: u64, message: &[i16]) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut seq: u16 = 1000;
    let mut tick: u64 = 0; // 20 ms frames
    let silence = [0xFFu8; 160];
    let push_audio = |out: &mut Vec<Packet>, seq: &mut u16, tick: &mut u64, payload: &[u8]| {
        out.push(Packet {
            at_ms: *tick * 20,
            rtp: rtp(0, *tick == 0, *seq, (*tick * 160) as u32, payload),
        });
        *seq = seq.wrapping_add(1);
        *tick += 1;
    };
    let push_digit = |out: &mut Vec<Packet>, seq: &mut u16, tick: &mut u64, event: u8| {
        let ts = (*tick * 160) as u32;
        // 100 ms tone: 5 updates, then the end packet three times (RFC 4733 §2.5.1.4).
        for i in 0..5u16 {
            let dur = (i + 1) * 160;
            let payload = [event, 10, (dur >> 8) as u8, dur as u8];
            out.push(Packet {
                at_ms: *tick * 20,
                rtp: rtp(101, i == 0, *seq, ts, &payload),
            });
            *seq = seq.wrapping_add(1);
            *tick += 1;
        }
        for _ in 0..3 {
            let dur: u16 = 800;
            let payload = [event, 0x80 | 10, (dur >> 8) as u8, dur as u8];
            out.push(Packet {
                at_ms: *tick * 20,
                rtp: rtp(101, false, *seq, ts, &payload),
            });
            *seq = seq.wrapping_add(1);
        }
    };
    while tick * 20 < dtmf_at_ms {
        push_audio(&mut out, &mut seq, &mut tick, &silence);
    }
    push_digit(&mut out, &mut seq, &mut tick, menu);
    while tick * 20 < speak_at_ms {
        push_audio(&mut out, &mut seq, &mut tick, &silence);
    }
    for frame in message.chunks(160) {
        let mut payload = [0xFFu8; 160];
        Codec::Pcmu.encode(frame, &mut payload[..frame.len()]);
        push_audio(&mut out, &mut seq, &mut tick, &payload);
    }
    for _ in 0..15 {
        push_audio(&mut out, &mut seq, &mut tick, &silence);
    }
    push_digit(&mut out, &mut seq, &mut tick, 11); // '#'
    for _ in 0..500 {
        push_audio(&mut out, &mut seq, &mut tick, &silence);
    }
    out
}

/// Classic pcap (what sipp's play_pcap_audio reads): Ethernet / IPv4 / UDP / RTP.
fn write_pcap(path: &Path, packets: &[Packet]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&0i32.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes());
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    f.write_all(&hdr).unwrap();
    for p in packets {
        let udp_len = 8 + p.rtp.len();
        let ip_len = 20 + udp_len;
        let mut frame = Vec::with_capacity(14 + ip_len);
        frame.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let mut ip = vec![
            0x45,
            0,
            (ip_len >> 8) as u8,
            ip_len as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ];
        ip.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip_checksum(&ip);
        ip[10] = (sum >> 8) as u8;
        ip[11] = sum as u8;
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&6000u16.to_be_bytes());
        frame.extend_from_slice(&6002u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&p.rtp);
        let mut rec = Vec::new();
        rec.extend_from_slice(&((p.at_ms / 1000) as u32).to_le_bytes());
        rec.extend_from_slice(&(((p.at_ms % 1000) * 1000) as u32).to_le_bytes());
        rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.write_all(&rec).unwrap();
        f.write_all(&frame).unwrap();
    }
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Issue 4's end-to-end check: a sipp call ends with a schema-valid ticket at a real HTTP
/// intake, categorised from the menu choice, delivered once with the bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_call_with_pcap_audio_and_rfc4733_digits_ends_in_a_ticket_at_the_intake() {
    if !peer_available("sipp") {
        return;
    }
    let intake = Intake::start(|_, _| Reply::Accept(201)).await;
    let url = intake.url();
    let mut gw = GatewayProcess::start(&[
        ("HOTLINE_INTAKE_URL", url.as_str()),
        ("HOTLINE_INTAKE_TOKEN", "s3cret-token"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let message = read_wav_8k(&repo().join("prompts/demo/caller_zh.wav"));
    let record_prompt = read_wav_8k(&repo().join("prompts/zh/record.wav")).len() as u64 / 8;
    let dtmf_at = 2500;
    let speak_at = dtmf_at + 300 + record_prompt + 900;
    let pcap = dir.path().join("caller.pcap");
    write_pcap(&pcap, &caller_stream(1, dtmf_at, speak_at, &message));
    let scenario = std::fs::read_to_string(repo().join("tests/sipp/uac_hotline.xml"))
        .unwrap()
        .replace("@PCAP@", pcap.to_str().unwrap());
    let scen_path = dir.path().join("uac.xml");
    std::fs::write(&scen_path, scenario).unwrap();

    let sip_port = free_udp_port();
    let media_port = gw.rtp.0 + 60;
    let mut sipp = Command::new("sipp");
    sipp.current_dir(dir.path())
        .arg(gw.sip.to_string())
        .args([
            "-sf",
            scen_path.to_str().unwrap(),
            "-s",
            "8890",
            "-m",
            "1",
            "-l",
            "1",
        ])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &sip_port.to_string(), "-mp", &media_port.to_string()])
        .args(["-timeout", "60", "-timeout_error", "-nostdin", "-trace_err"])
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || sipp.output().expect("run sipp"))
        .await
        .unwrap();
    let records = gw.wait_records(1, Duration::from_secs(10));
    intake
        .wait_for(Duration::from_secs(15), "the ticket at the intake", |s| {
            !s.documents.is_empty()
        })
        .await;
    let log = gw.stop();
    assert!(
        !log.contains("s3cret-token"),
        "the intake token must never be logged"
    );
    assert!(
        out.status.success(),
        "sipp failed ({}):\n{}\n{}\ndaemon:\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(records.len(), 1, "daemon:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["caller"], "13700000000");
    assert_eq!(rec["caller_name"], "sipp caller");
    assert_eq!(rec["menu"]["digit"], "1");
    assert_eq!(
        rec["menu"]["digits"], "1",
        "one digit per RFC 4733 event, despite 3 end packets"
    );
    assert_eq!(rec["recording"]["ended_by"], "stop_digit");
    assert_eq!(rec["media"]["codec"], "PCMU");
    let posts = intake.posts();
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some("Bearer s3cret-token")
    );
    let docs = intake.documents();
    assert_eq!(docs.len(), 1);
    assert!(
        intake.applied().values().all(|&n| n == 1),
        "each ticket applied once"
    );
    let (key, ticket) = docs.iter().next().unwrap();
    assert_valid(&schema(), ticket);
    assert_eq!(
        format!("{}:1", ticket["ticket_id"].as_str().unwrap()),
        key.as_str(),
        "Idempotency-Key is the ticket id and revision"
    );
    assert_eq!(ticket["call"]["call_id"], rec["call_id"]);
    assert_eq!(ticket["call"]["caller"], "13700000000");
    assert_eq!(ticket["menu"]["id"], "complaint");
    assert_eq!(ticket["classification"]["source"], "menu");
    assert!(ticket["classification"]["department"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(ticket["recording"]["format"], "wav", "{ticket:#}");
    assert_eq!(ticket["recording"]["sample_rate_hz"], 8000);
    assert_eq!(ticket["recording"]["location"], rec["recording"]["path"]);

    let recorded = read_wav_8k(Path::new(rec["recording"]["path"].as_str().unwrap()));
    let found = chunks_found(&recorded, &through_g711(&message, Codec::Pcmu), 0.9);
    assert!(
        found >= 0.9,
        "only {:.0}% of the pcap's audio is in the recording",
        found * 100.0
    );
}

/// The same caller over TCP (`-t t1`: one connection): responses come back on sipp's
/// connection, and the gateway's BYE reaches sipp on it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_call_over_tcp_completes_with_its_record() {
    if !peer_available("sipp") {
        return;
    }
    let mut gw = GatewayProcess::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let message = read_wav_8k(&repo().join("prompts/demo/caller_zh.wav"));
    let record_prompt = read_wav_8k(&repo().join("prompts/zh/record.wav")).len() as u64 / 8;
    let dtmf_at = 2500;
    let speak_at = dtmf_at + 300 + record_prompt + 900;
    let pcap = dir.path().join("caller.pcap");
    write_pcap(&pcap, &caller_stream(2, dtmf_at, speak_at, &message));
    let scenario = std::fs::read_to_string(repo().join("tests/sipp/uac_hotline.xml"))
        .unwrap()
        .replace("@PCAP@", pcap.to_str().unwrap());
    let scen_path = dir.path().join("uac.xml");
    std::fs::write(&scen_path, scenario).unwrap();

    let sip_port = free_udp_port();
    let media_port = gw.rtp.0 + 60;
    let mut sipp = Command::new("sipp");
    sipp.current_dir(dir.path())
        .arg(gw.sip.to_string())
        .args(["-sf", scen_path.to_str().unwrap(), "-s", "8890"])
        .args(["-m", "1", "-l", "1", "-t", "t1"])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &sip_port.to_string(), "-mp", &media_port.to_string()])
        .args(["-timeout", "60", "-timeout_error", "-nostdin", "-trace_err"])
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || sipp.output().expect("run sipp"))
        .await
        .unwrap();
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert!(
        out.status.success(),
        "sipp over TCP failed ({}):\n{}\n{}\ndaemon:\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(records.len(), 1, "daemon:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["caller"], "13700000000");
    assert_eq!(rec["menu"]["digit"], "2");
    assert_eq!(rec["recording"]["ended_by"], "stop_digit");
    assert_eq!(rec["hangup"]["by"], "gateway", "our BYE went over TCP");
}
