//! `cargo run --example ct2_convert -- CT2_DIR OUT.bin`
//!
//! Convert a local CTranslate2 Whisper directory (`model.bin`, `tokenizer.json`) to a
//! whisper.cpp ggml file and print its size and SHA-256 (what `models/models.toml` records).

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out] = args.as_slice() else {
        eprintln!("usage: ct2_convert CT2_DIR OUT.bin");
        std::process::exit(2);
    };
    let summary =
        match hotline_gateway::asr::convert::convert_ct2_dir(Path::new(dir), Path::new(out)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("convert: {e}");
                std::process::exit(1);
            }
        };
    let (size, sha1, sha256) =
        hotline_gateway::asr::model::digest_file(Path::new(out)).expect("digest");
    println!("{summary:?}\nsize = {size}\nsha1 = {sha1}\nsha256 = {sha256}");
}
