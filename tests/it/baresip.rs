//! baresip as the caller: a real softphone (its own SIP stack, SDP, RTP and RFC 4733 sender)
//! dials the hotline, chooses the complaint option, speaks a message from a WAV file, ends
//! it with `#`, and answers the gateway's BYE.
//!
//! baresip is driven the way a script drives it in the field: `-e "/dial …"` to place the
//! call, and key presses written to its `cons` UDP port (the key, then byte 0x04 to release
//! it: the time between the two is the tone's length). Its `aufile` module is the
//! microphone: the WAV is laid out so the speech starts after the beep (the prompts' lengths
//! decide when), and it runs on long after the call should have ended, because baresip
//! hangs up by itself when the file runs out, which would hide a missing gateway BYE.

use super::audio::{chunks_found, find, read_wav_8k, through_g711};
use super::harness::{free_udp_port, peer_available, repo, GatewayProcess};
use hotline_gateway::media::Codec;
use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// When the menu digit is pressed, counted from "Call established": inside the greeting, so
/// it also checks barge-in.
const MENU_KEY_AT: Duration = Duration::from_millis(2500);
/// How long each key is held down.
const KEY_HOLD: Duration = Duration::from_millis(100);

/// The caller's microphone: silence until `speak_at`, the message, then long silence.
pub(super) fn write_source_wav(path: &Path, speak_at: Duration, message: &[i16], tail: Duration) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let silence = |d: Duration| d.as_millis() as usize * 8;
    for _ in 0..silence(speak_at) {
        w.write_sample(0i16).unwrap();
    }
    for &s in message {
        w.write_sample(s).unwrap();
    }
    for _ in 0..silence(tail) {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
}

/// Where the distribution put baresip's modules (Debian: /usr/lib/baresip/modules).
fn module_dir() -> PathBuf {
    let candidates = [
        "/usr/lib/baresip/modules",
        "/usr/local/lib/baresip/modules",
        "/usr/lib/x86_64-linux-gnu/baresip/modules",
        "/usr/lib64/baresip/modules",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("aufile.so").exists())
        .unwrap_or_else(|| PathBuf::from(candidates[0]))
}

/// A config directory for `baresip -f`: loopback only, no registration, no sound card.
pub(super) fn write_config(
    dir: &Path,
    sip_port: u16,
    cons_port: u16,
    rtp: (u16, u16),
    source: &Path,
) {
    let config = format!(
        "poll_method\tepoll\n\
         sip_listen\t127.0.0.1:{sip_port}\n\
         net_interface\t127.0.0.1\n\
         dns_server\t127.0.0.1:53\n\
         audio_source\taufile,{source}\n\
         audio_srate\t8000\n\
         audio_channels\t1\n\
         rtp_ports\t{rtp_min}-{rtp_max}\n\
         module_path\t{modules}\n\
         module\tg711.so\n\
         module\taufile.so\n\
         module\tsndfile.so\n\
         module\tcons.so\n\
         module_tmp\taccount.so\n\
         module_app\tmenu.so\n\
         cons_listen\t127.0.0.1:{cons_port}\n\
         snd_path\t{snd}\n",
        source = source.display(),
        modules = module_dir().display(),
        rtp_min = rtp.0,
        rtp_max = rtp.1,
        snd = dir.join("snd").display(),
    );
    std::fs::create_dir_all(dir.join("snd")).unwrap();
    std::fs::write(dir.join("config"), config).unwrap();
    // A-law first: the gateway lists PCMU first, so PCMA on the record shows the caller's
    // order won.
    std::fs::write(
        dir.join("accounts"),
        "<sip:test@127.0.0.1>;regint=0;audio_codecs=PCMA,PCMU\n",
    )
    .unwrap();
}

/// The running softphone: its output lines arrive on a channel (read by a thread, so a
/// silent baresip cannot block the test), and it is killed when dropped.
pub(super) struct Baresip {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    cons: (UdpSocket, u16),
}

impl Baresip {
    /// Start baresip on `config_dir`, dialling `dial` when given (else it waits for calls).
    pub(super) fn start(config_dir: &Path, dial: Option<&str>, cons_port: u16) -> Baresip {
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(config_dir)
            .args(
                dial.map(|d| ["-e".to_owned(), format!("/dial {d}")])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start baresip");
        let mut out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Its status line is redrawn with '\r', so split on both line ends.
            let mut buf = [0u8; 4096];
            let mut line = Vec::new();
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b == b'\n' || b == b'\r' {
                        if !line.is_empty() {
                            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                            line.clear();
                        }
                    } else {
                        line.push(b);
                    }
                }
            }
        });
        Baresip {
            child,
            lines,
            log: Vec::new(),
            cons: (UdpSocket::bind("127.0.0.1:0").unwrap(), cons_port),
        }
    }

    /// Wait for an output line containing `needle`; false at `deadline` or if baresip exits.
    pub(super) fn wait_for(&mut self, needle: &str, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    if !line.contains("audio=") {
                        self.log.push(line);
                    }
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Press and release a key on the phone's keypad; in a call, baresip sends it as DTMF.
    pub(super) fn press(&self, key: char) {
        let (sock, port) = &self.cons;
        let to = ("127.0.0.1", *port);
        sock.send_to(key.to_string().as_bytes(), to).unwrap();
        std::thread::sleep(KEY_HOLD);
        sock.send_to(&[0x04], to).unwrap();
    }

    /// Quit (SIGTERM lets sndfile finish its WAV headers), killing it if it hangs.
    pub(super) fn quit(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(line) = self.lines.try_recv() {
            if !line.contains("audio=") {
                self.log.push(line);
            }
        }
        self.log.join("\n")
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What baresip heard: the `sndfile` dump of the decoded (received) stream.
pub(super) fn heard_wav(snd_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(snd_dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
}

fn prompt_len(name: &str) -> Duration {
    let pcm = read_wav_8k(&repo().join("prompts/zh").join(name));
    Duration::from_millis(pcm.len() as u64 / 8)
}

#[test]
fn baresip_calls_chooses_complaint_by_rfc4733_and_leaves_a_message() {
    if !peer_available("baresip") {
        return;
    }
    let mut gw = GatewayProcess::start(&[]);
    let dir = tempfile::tempdir().unwrap();

    // The same timing as the sipp test: the digit (held 100 ms), the whole "record" prompt,
    // the 300 ms beep, then 900 ms of margin before the caller speaks.
    let message = read_wav_8k(&repo().join("prompts/demo/caller_zh.wav"));
    let message_len = Duration::from_millis(message.len() as u64 / 8);
    let speak_at = MENU_KEY_AT
        + Duration::from_millis(300)
        + prompt_len("record.wav")
        + Duration::from_millis(900);
    // '#' shortly after the message: well inside the 1.5 s of silence that would end it.
    let hash_at = speak_at + message_len + Duration::from_millis(300);
    // The gateway's BYE comes after the reference read-back (intro, 12 digits twice, "keep
    // it", "press * again", 5 s waiting for `*`), thanks and goodbye; the file must outlast
    // that by far. The wait below ends at the BYE, so a generous bound costs nothing.
    let read_back = prompt_len("reference_intro.wav")
        + prompt_len("reference_keep.wav")
        + prompt_len("reference_repeat.wav")
        + 24 * prompt_len("digit_7.wav")
        + Duration::from_secs(8);
    let bye_by = hash_at
        + read_back
        + prompt_len("thanks.wav")
        + prompt_len("goodbye.wav")
        + Duration::from_secs(5);
    let source = dir.path().join("caller.wav");
    write_source_wav(
        &source,
        speak_at,
        &message,
        bye_by - hash_at + Duration::from_secs(10),
    );

    let cons_port = free_udp_port();
    write_config(
        dir.path(),
        free_udp_port(),
        cons_port,
        (gw.rtp.0 + 60, gw.rtp.1),
        &source,
    );
    let mut phone = Baresip::start(dir.path(), Some(&format!("sip:8890@{}", gw.sip)), cons_port);

    // The file starts playing when the call is established: time everything from there.
    let established = phone.wait_for("Call established", Instant::now() + Duration::from_secs(10));
    let t0 = Instant::now();
    let mut bye_answered = false;
    if established {
        std::thread::sleep(MENU_KEY_AT);
        phone.press('1');
        std::thread::sleep(hash_at.saturating_sub(t0.elapsed()));
        phone.press('#');
        // baresip reports the peer's BYE as "session closed", then the call as terminated.
        bye_answered = phone.wait_for("session closed", t0 + bye_by);
    }
    let phone_log = phone.quit();
    let records = gw.wait_records(1, Duration::from_secs(10));
    let log = gw.stop();
    assert!(
        established,
        "baresip never got the call up:\n{phone_log}\ndaemon:\n{log}"
    );
    assert!(
        bye_answered,
        "no BYE from the gateway reached baresip within {bye_by:?}:\n{phone_log}\ndaemon:\n{log}"
    );
    assert_eq!(records.len(), 1, "one call record; daemon:\n{log}");
    let rec = &records[0];
    assert_eq!(rec["caller"], "test", "the user of baresip's account");
    assert_eq!(rec["called"], "8890");
    assert_eq!(rec["menu"]["digit"], "1", "{rec:#}");
    assert_eq!(rec["menu"]["digits"], "1", "one digit per RFC 4733 event");
    assert_eq!(rec["menu"]["id"], "complaint");
    assert_eq!(rec["hangup"]["by"], "gateway");
    assert_eq!(rec["hangup"]["reason"], "completed");
    assert_eq!(rec["recording"]["ended_by"], "stop_digit", "{rec:#}");
    assert_eq!(
        rec["media"]["codec"], "PCMA",
        "the caller's codec order decides"
    );
    let codec = Codec::Pcma;

    // The message on disk is what baresip's microphone said, after A-law.
    let recorded = read_wav_8k(Path::new(rec["recording"]["path"].as_str().unwrap()));
    let found = chunks_found(&recorded, &through_g711(&message, codec), 0.9);
    assert!(
        found >= 0.9,
        "only {:.0}% of the caller's audio is in the recording",
        found * 100.0
    );

    // And baresip heard the greeting, bit-exact after A-law, before it pressed 1.
    let heard = heard_wav(&dir.path().join("snd"))
        .unwrap_or_else(|| panic!("no sndfile dump of what baresip heard:\n{phone_log}"));
    let heard = read_wav_8k(&heard);
    let greeting = through_g711(&read_wav_8k(&repo().join("prompts/zh/greeting.wav")), codec);
    let (corr, overlap) = find(&heard[..heard.len().min(8000 * 3)], &greeting[..8000]);
    assert!(
        corr > 0.95 && overlap > 0.95,
        "heard vs greeting: corr {corr:.3}, overlap {overlap:.2}"
    );
}
