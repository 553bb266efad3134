//! Backup files: the manifest, the checkpoint and the framed records. The
//! checksum is made right, so the fuzzer reaches what is behind it.
#![no_main]

mod alloc_cap;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let mut file = b"MADOBAK1\n".to_vec();
    file.extend_from_slice(data);
    let sum = Sha256::digest(&file);
    file.extend_from_slice(b"MADOEND1");
    file.extend_from_slice(&sum);
    let _ = madoguchi_core::backup::parse(&file);
    let _ = madoguchi_core::backup::parse(data);
});
