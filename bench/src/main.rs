//! Measures the profile toolkit's hot paths in-process and prints one `name value unit` line per figure.
//! `bench/run.sh` runs this beside the reference tools and computes ratios. Medians of repeated runs, because the
//! machine is shared and noisy.

use std::hint::black_box;
use std::time::{Duration, Instant};

use provisor_envelope::openssl_enc::{Digest, Kdf};
use provisor_envelope::{Encryption, WrapSpec, wrap};
use provisor_profile::{ApplyOptions, ParseOptions, PhoneState, Profile};

/// Runs `f` repeatedly for about `budget`, in `rounds` rounds, and returns the median time per call.
fn median_per_call(rounds: usize, budget: Duration, mut f: impl FnMut()) -> Duration {
    // Calibrate: how many calls fit in one round.
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < budget / (rounds as u32 * 4) || calls == 0 {
        f();
        calls += 1;
    }
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed() / calls
        })
        .collect();
    samples.sort();
    samples[rounds / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let profile_path = args.get(1).expect("usage: provisor-bench PROFILE_1000.xml PROFILE_50K.xml BLOB_1M.bin");
    let profile_50k = args.get(2).expect("second argument: a ~50 KB profile");
    let blob_path = args.get(3).expect("third argument: a 1 MiB file");
    let profile = std::fs::read(profile_path).expect("read profile");
    let options = ParseOptions::default();
    let count = Profile::parse(&profile, &options).expect("profile parses").parameters.len();

    let t = median_per_call(9, Duration::from_secs(3), || {
        let p = Profile::parse(black_box(&profile), &options).unwrap();
        let mut state = PhoneState::new();
        black_box(state.apply(&p, &ApplyOptions::default()));
    });
    let t_parse = median_per_call(9, Duration::from_secs(2), || {
        black_box(Profile::parse(black_box(&profile), &options).unwrap());
    });
    println!("parameters {count} count");
    println!("parse_only_mb_s {:.1} MB/s", profile.len() as f64 / t_parse.as_secs_f64() / 1e6);
    println!("profile_bytes {} bytes", profile.len());
    println!("parse_apply_mb_s {:.1} MB/s", profile.len() as f64 / t.as_secs_f64() / 1e6);
    println!("parse_apply_us {:.1} us", t.as_secs_f64() * 1e6);

    let blob = std::fs::read(blob_path).expect("read blob");
    let salt = Some([7u8; 8]);
    let t = median_per_call(9, Duration::from_secs(3), || {
        black_box(provisor_envelope::openssl_enc::encrypt(
            black_box(&blob),
            b"SecretPhrase1234",
            Kdf::BytesToKey(Digest::Sha256),
            salt,
        ));
    });
    println!("aes256cbc_encrypt_mb_s {:.1} MB/s", blob.len() as f64 / t.as_secs_f64() / 1e6);

    let p50 = std::fs::read(profile_50k).expect("read 50K profile");
    let spec = WrapSpec {
        gzip: true,
        encryption: Some(Encryption::AesCbc {
            key: b"SecretPhrase1234".to_vec(),
            kdf: Kdf::BytesToKey(Digest::Sha256),
            salted: true,
        }),
    };
    let t = median_per_call(9, Duration::from_secs(3), || {
        black_box(wrap(black_box(&p50), &spec).unwrap());
    });
    println!("gzip_encrypt_50k_us {:.1} us", t.as_secs_f64() * 1e6);
    println!("profile_50k_bytes {} bytes", p50.len());
}
