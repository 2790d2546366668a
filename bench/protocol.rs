//! Micro-benchmarks of the protocol core: the server's share of a login,
//! and record sealing/opening against raw AES-256-GCM on one core.
//! Run with `cargo bench --bench protocol` (bench/run does).

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use remo::proto::framing::{Framing, RecordSplitter};
use remo::proto::handshake::{
    new_session_id, server_accept, ClientHandshake, Ephemeral, ParsedAuth,
};
use remo::proto::identity::IdentityKey;
use remo::proto::record::{Opener, RecordKey, Sealer, MAX_PLAINTEXT};

fn handshake(c: &mut Criterion) {
    let user = IdentityKey::generate();
    let server = IdentityKey::generate();
    let now = 1_800_000_000;
    c.bench_function(
        "server handshake (parse, verify M1, ECDH, sign M2, HKDF)",
        |b| {
            b.iter_batched(
                || {
                    let (_, req) = ClientHandshake::start("bench", &user, now);
                    serde_json::to_vec(&req).unwrap_or_default()
                },
                |body| {
                    let parsed = ParsedAuth::parse(&body).ok()?;
                    parsed.verify(&user.public(), now).ok()?;
                    server_accept(
                        &parsed,
                        &server,
                        &Ephemeral::generate(),
                        &new_session_id(),
                        600,
                    )
                    .ok()
                },
                BatchSize::SmallInput,
            )
        },
    );
}

fn records(c: &mut Criterion) {
    let key = [7u8; 32];
    let data = vec![0x5au8; MAX_PLAINTEXT - 1];
    let mut g = c.benchmark_group("64 KiB records");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("raw AES-256-GCM encrypt", |b| {
        let aes = Aes256Gcm::new((&key).into());
        let mut buf = data.clone();
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&n.to_be_bytes());
            aes.encrypt_inout_detached(
                &Nonce::from(nonce),
                b"remo/1 get more",
                (&mut buf[..]).into(),
            )
            .ok()
        })
    });
    g.bench_function("raw AES-256-GCM decrypt", |b| {
        let aes = Aes256Gcm::new((&key).into());
        let mut buf = data.clone();
        let nonce = Nonce::from([0u8; 12]);
        let tag = aes
            .encrypt_inout_detached(&nonce, b"remo/1 get more", (&mut buf[..]).into())
            .unwrap_or_default();
        let ct = buf.clone();
        b.iter(|| {
            buf.copy_from_slice(&ct);
            aes.decrypt_inout_detached(&nonce, b"remo/1 get more", (&mut buf[..]).into(), &tag)
                .ok()
        })
    });
    g.bench_function("SHA-256 (get/put digest)", |b| {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        b.iter(|| h.update(&data))
    });
    g.bench_function("base64 encode", |b| {
        let mut out = String::with_capacity(data.len() * 2);
        b.iter(|| {
            out.clear();
            remo::proto::b64::encode_into(&data, &mut out);
            out.len()
        })
    });
    g.bench_function("base64 decode", |b| {
        let text = remo::proto::b64::encode(&data);
        let mut out = Vec::with_capacity(data.len() + 16);
        b.iter(|| remo::proto::b64::decode_into(text.as_bytes(), &mut out).is_ok())
    });
    g.bench_function("seal (AES-GCM + base64 line)", |b| {
        let mut s = Sealer::new(RecordKey::new(&key), 1, "get");
        b.iter(|| s.seal(&[&[1u8], &data], false).ok())
    });
    // An upload's data record: one part, sealed into a reused line buffer
    // (what the client's put does for every 64 KiB).
    g.bench_function("seal_into, one part (put data)", |b| {
        let mut s = Sealer::new(RecordKey::new(&key), 1, "put");
        let mut out = String::with_capacity(data.len() * 2);
        b.iter(|| {
            out.clear();
            s.seal_into(&[&data], false, &mut out).is_ok()
        })
    });
    let mut s = Sealer::new(RecordKey::new(&key), 1, "get");
    let line = s
        .seal(&[&[1u8], &data], false)
        .map(|l| l.slice(..l.len() - 2))
        .unwrap_or_default();
    g.bench_function("open (base64 + AES-GCM)", |b| {
        b.iter_batched(
            || Opener::new(RecordKey::new(&key), Some(1), "get"),
            |mut o| o.open(&line).ok(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The two framings of §4 and §4.1 on the same 64 KiB record: sealing into
/// a reused buffer, and a receiver's whole path (buffering the bytes as a
/// front door hands them over, cutting the record, opening it).
fn framings(c: &mut Criterion) {
    let key = [7u8; 32];
    let data = vec![0x5au8; MAX_PLAINTEXT];
    let mut g = c.benchmark_group("64 KiB records by framing");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for framing in Framing::ALL {
        g.bench_function(format!("seal_framed, one part ({framing})"), |b| {
            let mut s = Sealer::new(RecordKey::new(&key), 1, "put");
            let mut out = Vec::with_capacity(framing.sealed_len(data.len()));
            b.iter(|| {
                out.clear();
                s.seal_framed(&[&data], false, framing, &mut out).is_ok()
            })
        });
        let mut s = Sealer::new(RecordKey::new(&key), 1, "put");
        let wire = s.seal_bytes(&[&data], false, framing).unwrap_or_default();
        g.bench_function(format!("split + open ({framing})"), |b| {
            b.iter_batched(
                || Opener::new(RecordKey::new(&key), Some(1), "put"),
                |mut o| {
                    let mut split = RecordSplitter::new(framing);
                    split.push(&wire);
                    let rec = split.next_record().ok().flatten()?;
                    rec.open(&mut o).ok().map(|r| r.index)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, handshake, records, framings);
criterion_main!(benches);
