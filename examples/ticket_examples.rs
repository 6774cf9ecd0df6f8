//! Regenerates `docs/examples/*.json` from the real code path (classification, duplicate
//! hint, recording checksum), so the examples cannot drift from what the gateway emits.
//!
//! `cargo run --example ticket_examples` (ids and timestamps change on every run).

use chrono::{TimeZone, Utc};
use hotline_gateway::ticket::{
    CallFacts, HangupBy, MenuChoice, MenuSource, RecordingFacts, SegmentFacts, TicketConfig,
    TicketService, TranscriptFacts,
};
use std::path::Path;

fn call(id: &str, caller: &str, minute: u32) -> CallFacts {
    let start = Utc.with_ymd_and_hms(2026, 11, 26, 1, minute, 5).unwrap();
    CallFacts {
        call_uid: format!("019ac1d2-{id:0>4}-7000-8000-00000000{minute:04}"),
        call_id: format!("{id}@10.0.0.5"),
        reference: Some(format!("26112600{:04}", minute + 1)),
        trunk: Some("pstn-unicom-1".into()),
        caller: caller.into(),
        called: "8890".into(),
        channel: "8890".into(),
        started_at: start,
        answered_at: start + chrono::Duration::milliseconds(900),
        ended_at: start + chrono::Duration::seconds(64),
        hangup_by: HangupBy::Caller,
        hangup_reason: "BYE".into(),
        menu: None,
        transfer: None,
        urgent_trigger: None,
        transcript: None,
        recording: None,
    }
}

fn transcript(lang: &str, parts: &[(u64, u64, &str, f32)]) -> TranscriptFacts {
    TranscriptFacts {
        language: lang.into(),
        text: parts
            .iter()
            .map(|p| p.2)
            .collect::<Vec<_>>()
            .join(if lang == "zh" { "" } else { " " }),
        segments: parts
            .iter()
            .map(|&(s, e, t, c)| SegmentFacts {
                start_ms: s,
                end_ms: e,
                text: t.into(),
                confidence: Some(c),
            })
            .collect(),
        model: "ggml-small.bin".into(),
        empty_reason: None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = TicketConfig {
        db_path: tmp.path().join("t.sqlite"),
        outbox_dir: tmp.path().join("outbox"),
        gateway_instance: "gw-anshan-01".into(),
        ..TicketConfig::default()
    };
    let svc = TicketService::open(cfg).unwrap();
    let wav = tmp.path().join("rec.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..16000 {
        w.write_sample(((i as f32 * 0.07).sin() * 6000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();

    let mut heating = call("a84c1f", "13904120001", 0);
    heating.menu = Some(MenuChoice {
        source: MenuSource::Dtmf,
        digits: Some("1".into()),
        utterance: None,
        id: "complaint".into(),
        label: "投诉举报".into(),
    });
    heating.transcript = Some(transcript(
        "zh",
        &[
            (420, 3100, "你好，我家是铁东区胜利小区的，", 0.91),
            (3100, 6800, "暖气一直不热，室温只有十二度。", 0.88),
        ],
    ));
    heating.recording = Some(RecordingFacts {
        path: wav.clone(),
        duration_ms: 7000,
    });
    let mut repeat = call("b3d902", "13804125555", 20);
    repeat.menu = heating.menu.clone();
    repeat.transcript = Some(transcript(
        "zh",
        &[(380, 5200, "铁东区胜利小区暖气不热，室温只有十二度", 0.86)],
    ));
    repeat.recording = Some(RecordingFacts {
        path: wav.clone(),
        duration_ms: 5200,
    });
    let mut gas = call("c77e10", "13700009999", 31);
    gas.hangup_by = HangupBy::Gateway;
    gas.hangup_reason = "max recording length".into();
    gas.transcript = Some(transcript(
        "en",
        &[
            (200, 2900, "There is a gas leak in our stairwell,", 0.83),
            (2900, 4700, "it smells very strong.", 0.79),
        ],
    ));
    let mut silent = call("d01a55", "anonymous", 45);
    silent.trunk = None;
    silent.menu = Some(MenuChoice {
        source: MenuSource::Speech,
        digits: None,
        utterance: Some("政策咨询".into()),
        id: "policy".into(),
        label: "政策咨询".into(),
    });
    silent.transcript = Some(TranscriptFacts {
        language: "zh".into(),
        text: String::new(),
        segments: vec![],
        model: "ggml-small.bin".into(),
        empty_reason: None,
    });
    silent.hangup_reason = "no input".into();

    for (name, facts) in [
        ("heating-zh", heating),
        ("heating-zh-duplicate", repeat),
        ("gas-leak-en-urgent", gas),
        ("no-speech-policy", silent),
    ] {
        let mut t = svc.create(facts).await.unwrap();
        let call_id = t.call.call_id.split('@').next().unwrap().to_owned();
        if let Some(rec) = t.recording.as_mut() {
            // The real file lives in a temp dir; show where the gateway would keep it.
            rec.location = format!("/var/lib/hotline-gateway/recordings/2026-11-26/{call_id}.wav");
        }
        let path = out.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&t).unwrap() + "\n").unwrap();
        println!("{}", path.display());
    }
}
