//! The safetensors loader on small checkpoints written here with the `safetensors` serializer, in
//! the layouts real checkpoints use: single files, shards with an index, fp16 variants, pipeline
//! subfolders; every tensor read back from the GPU and compared bit for bit; every error case
//! checked for what its message names.

mod common;

use common::*;
use iterinv_models::engine::DType;
use iterinv_models::weights::{Checkpoint, FileDType, DIFFUSERS_STEM, TRANSFORMERS_STEM};
use iterinv_models::Error;

/// Load `raw` from `ck` and check the GPU holds exactly the written bytes and values.
fn assert_roundtrip(ck: &Checkpoint, raw: &Raw, dtype: DType) {
    let t = ck
        .tensor(gpu(), &raw.key, &raw.shape)
        .unwrap_or_else(|e| panic!("{}: {e}", raw.key));
    assert_eq!(t.shape(), raw.shape.as_slice());
    assert_eq!(
        t.dtype(),
        dtype,
        "{} uploads in its stored precision",
        raw.key
    );
    assert_eq!(
        t.to_bytes().unwrap(),
        raw.bytes,
        "{}: bytes differ",
        raw.key
    );
    let want: Vec<u32> = match dtype {
        DType::F32 => raw
            .bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        DType::F16 => raw
            .bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32().to_bits())
            .collect(),
        DType::BF16 => raw
            .bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32().to_bits())
            .collect(),
        DType::I32 => unreachable!(),
    };
    let got: Vec<u32> = t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, want, "{}: values differ", raw.key);
}

fn message<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message lacks {p:?}: {msg}");
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn single_file_f32_f16_bf16_bit_exact() {
    let dir = tmp();
    let a = f32_raw("conv_in.weight", &[4, 3, 3, 3], 1);
    let b = f16_raw("conv_in.bias", &[3, 5], 2); // 30 bytes: not a multiple of 4
    let c = bf16_raw("time_embedding.linear_1.weight", &[7, 3], 3);
    let s = f32_raw("scalar", &[], 4);
    write(
        &dir.path().join("diffusion_pytorch_model.safetensors"),
        &[&a, &b, &c, &s],
    );
    let ck = Checkpoint::open(dir.path(), None, None, DIFFUSERS_STEM).unwrap();
    assert_eq!(ck.len(), 4);
    assert!(ck.contains("conv_in.bias") && !ck.contains("conv_in"));
    assert_eq!(ck.shape("conv_in.weight"), Some(&[4, 3, 3, 3][..]));
    assert_eq!(
        ck.dtype("time_embedding.linear_1.weight"),
        Some(FileDType::BF16)
    );
    assert_roundtrip(&ck, &a, DType::F32);
    assert_roundtrip(&ck, &b, DType::F16);
    assert_roundtrip(&ck, &c, DType::BF16);
    assert_roundtrip(&ck, &s, DType::F32);
    assert!(ck.unused_keys().is_empty());
}

#[test]
fn open_file_directly_and_unused_keys() {
    let dir = tmp();
    let path = dir.path().join("weights.safetensors");
    let a = f32_raw("a.weight", &[2, 2], 5);
    let b = f32_raw("b.weight", &[3], 6);
    let c = f16_raw("c.weight", &[1], 7);
    write(&path, &[&a, &b, &c]);
    for ck in [
        Checkpoint::open_file(&path).unwrap(),
        Checkpoint::open(&path, None, None, DIFFUSERS_STEM).unwrap(),
    ] {
        assert_eq!(ck.files(), std::slice::from_ref(&path));
        assert_eq!(ck.unused_keys(), ["a.weight", "b.weight", "c.weight"]);
        assert_roundtrip(&ck, &b, DType::F32);
        let (bytes, dt) = ck.bytes("c.weight", &[1]).unwrap();
        assert_eq!((bytes, dt), (&c.bytes[..], DType::F16));
        assert_eq!(ck.unused_keys(), ["a.weight"]);
        // Shape and contains queries do not count as use.
        assert!(ck.shape("a.weight").is_some() && ck.contains("a.weight"));
        assert_eq!(ck.unused_keys(), ["a.weight"]);
        assert_eq!(ck.index().used_count(), 2);
    }
}

#[test]
fn tensors_over_the_binding_limit_are_chunked() {
    let dir = tmp();
    let big = f32_raw("big.weight", &[40, 9], 8); // 1440 bytes, limit 256
    let half = f16_raw("half.weight", &[33, 7], 9); // 462 bytes
    write(&dir.path().join("model.safetensors"), &[&big, &half]);
    let ck = Checkpoint::open(dir.path(), None, None, TRANSFORMERS_STEM).unwrap();
    let g = small_binding_gpu();
    for raw in [&big, &half] {
        let t = ck.tensor(g, &raw.key, &raw.shape).unwrap();
        assert!(t.is_chunked(), "{} should be split over buffers", raw.key);
        assert_eq!(t.to_bytes().unwrap(), raw.bytes);
    }
}

#[test]
fn sharded_checkpoint_with_index() {
    let dir = tmp();
    let a = f32_raw("down_blocks.0.resnets.0.conv1.weight", &[8, 4, 3, 3], 10);
    let b = f16_raw("down_blocks.0.resnets.0.conv1.bias", &[8], 11);
    let c = bf16_raw("up_blocks.0.resnets.0.conv1.weight", &[5, 6], 12);
    let d = f32_raw("conv_out.bias", &[6], 13);
    let s1 = "diffusion_pytorch_model-00001-of-00002.safetensors";
    let s2 = "diffusion_pytorch_model-00002-of-00002.safetensors";
    write(&dir.path().join(s1), &[&a, &b]);
    write(&dir.path().join(s2), &[&c, &d]);
    write_index(
        &dir.path()
            .join("diffusion_pytorch_model.safetensors.index.json"),
        &[(s1, &[&a, &b]), (s2, &[&c, &d])],
    );
    let ck = Checkpoint::open(dir.path(), None, None, DIFFUSERS_STEM).unwrap();
    assert_eq!(ck.files().len(), 2);
    assert_eq!(ck.len(), 4);
    assert!(ck
        .location()
        .ends_with("diffusion_pytorch_model.safetensors.index.json"));
    assert_roundtrip(&ck, &a, DType::F32);
    assert_roundtrip(&ck, &c, DType::BF16);
    assert_eq!(ck.unused_keys(), vec![d.key.clone(), b.key.clone()]);
    assert_roundtrip(&ck, &b, DType::F16);
    assert_roundtrip(&ck, &d, DType::F32);
    assert!(ck.unused_keys().is_empty());

    // A missing key names the index and its shards.
    let msg = message(ck.tensor(gpu(), "conv_out.weight", &[6, 8, 3, 3]));
    assert_names(
        &msg,
        &["`conv_out.weight`", "index.json", s1, s2, "`conv_out.bias`"],
    );
}

#[test]
fn variants_single_and_sharded() {
    let dir = tmp();
    // A diffusers folder with both precisions.
    let full = f32_raw("conv_in.weight", &[2, 3], 14);
    let half = f16_raw("conv_in.weight", &[2, 3], 14);
    write(
        &dir.path().join("diffusion_pytorch_model.safetensors"),
        &[&full],
    );
    write(
        &dir.path().join("diffusion_pytorch_model.fp16.safetensors"),
        &[&half],
    );
    let ck = Checkpoint::open(dir.path(), None, Some("fp16"), DIFFUSERS_STEM).unwrap();
    assert_roundtrip(&ck, &half, DType::F16);
    let ck = Checkpoint::open(dir.path(), None, None, DIFFUSERS_STEM).unwrap();
    assert_roundtrip(&ck, &full, DType::F32);

    // A transformers folder with only a sharded fp16 variant (T5's layout).
    let t5 = tmp();
    let e = f16_raw("shared.weight", &[11, 4], 15);
    let q = f16_raw(
        "encoder.block.0.layer.0.SelfAttention.q.weight",
        &[4, 4],
        16,
    );
    let s1 = "model.fp16-00001-of-00002.safetensors";
    let s2 = "model.fp16-00002-of-00002.safetensors";
    write(&t5.path().join(s1), &[&e]);
    write(&t5.path().join(s2), &[&q]);
    write_index(
        &t5.path().join("model.safetensors.index.fp16.json"),
        &[(s1, &[&e]), (s2, &[&q])],
    );
    let ck = Checkpoint::open(t5.path(), None, Some("fp16"), TRANSFORMERS_STEM).unwrap();
    assert_roundtrip(&ck, &e, DType::F16);
    assert_roundtrip(&ck, &q, DType::F16);

    // Asking for no variant where only fp16 exists: an error that says to pass fp16.
    let msg = message(Checkpoint::open(t5.path(), None, None, TRANSFORMERS_STEM));
    assert_names(
        &msg,
        &["model.safetensors", "model.safetensors.index.json", "fp16"],
    );

    // The other sharded variant spelling, `{stem}.{variant}.safetensors.index.json`.
    let other = tmp();
    write(&other.path().join(s1), &[&e]);
    write_index(
        &other.path().join("model.fp16.safetensors.index.json"),
        &[(s1, &[&e])],
    );
    let ck = Checkpoint::open(other.path(), None, Some("fp16"), TRANSFORMERS_STEM).unwrap();
    assert_roundtrip(&ck, &e, DType::F16);
}

#[test]
fn missing_variant_names_what_exists() {
    let dir = tmp();
    write(
        &dir.path().join("diffusion_pytorch_model.safetensors"),
        &[&f32_raw("x", &[1], 1)],
    );
    let msg = message(Checkpoint::open(
        dir.path(),
        None,
        Some("fp16"),
        DIFFUSERS_STEM,
    ));
    assert_names(
        &msg,
        &[
            "diffusion_pytorch_model.fp16.safetensors",
            "diffusion_pytorch_model.safetensors.index.fp16.json",
            "no `fp16` variant",
            "without a variant",
            &dir.path().display().to_string(),
        ],
    );
}

#[test]
fn pipeline_folder_subfolders() {
    let root = tmp();
    let w = f16_raw("conv_in.weight", &[4, 3, 3, 3], 20);
    let t = f32_raw("shared.weight", &[5, 2], 21);
    write(
        &root
            .path()
            .join("unet/diffusion_pytorch_model.fp16.safetensors"),
        &[&w],
    );
    write(&root.path().join("text_encoder/model.safetensors"), &[&t]);
    std::fs::write(root.path().join("model_index.json"), "{}").unwrap();

    let unet = Checkpoint::open(root.path(), Some("unet"), Some("fp16"), DIFFUSERS_STEM).unwrap();
    assert_roundtrip(&unet, &w, DType::F16);
    let text =
        Checkpoint::open(root.path(), Some("text_encoder"), None, TRANSFORMERS_STEM).unwrap();
    assert_roundtrip(&text, &t, DType::F32);

    // A subfolder that is not there: the error lists what the pipeline folder holds.
    let msg = message(Checkpoint::open(
        root.path(),
        Some("vae"),
        None,
        DIFFUSERS_STEM,
    ));
    assert_names(
        &msg,
        &[
            "vae",
            "does not exist",
            "model_index.json",
            "text_encoder/",
            "unet/",
        ],
    );
    // The pipeline folder itself, without a subfolder: say so.
    let msg = message(Checkpoint::open(root.path(), None, None, DIFFUSERS_STEM));
    assert_names(&msg, &["pipeline folder", "unet", "model_index.json"]);
}

#[test]
fn missing_folder_and_empty_folder() {
    let root = tmp();
    let gone = root.path().join("IF-I-XL");
    let msg = message(Checkpoint::open(&gone, None, None, DIFFUSERS_STEM));
    assert_names(
        &msg,
        &["IF-I-XL", "does not exist", "nothing (it is empty)"],
    );
    let msg = message(Checkpoint::open_file(&gone.join("x.safetensors")));
    assert_names(&msg, &["x.safetensors", "does not exist"]);

    std::fs::write(root.path().join("pytorch_model.bin"), b"not read").unwrap();
    let msg = message(Checkpoint::open(root.path(), None, None, TRANSFORMERS_STEM));
    assert_names(
        &msg,
        &[
            "model.safetensors",
            "pytorch_model.bin",
            "convert them to safetensors",
        ],
    );
}

#[test]
fn missing_key_suggests_near_misses() {
    let dir = tmp();
    let path = dir.path().join("diffusion_pytorch_model.safetensors");
    let keys = [
        "mid_block.attentions.0.to_q.weight",
        "mid_block.attentions.0.to_k.weight",
        "mid_block.attentions.0.to_v.weight",
        "mid_block.resnets.0.conv1.weight",
        "conv_in.weight",
    ];
    let raws: Vec<Raw> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| f32_raw(k, &[2], i as u32))
        .collect();
    write(&path, &raws.iter().collect::<Vec<_>>());
    let ck = Checkpoint::open(dir.path(), None, None, DIFFUSERS_STEM).unwrap();
    let err = ck
        .tensor(gpu(), "mid_block.attentions.0.query.weight", &[2])
        .unwrap_err();
    let Error::MissingKey { key, near, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(key, "mid_block.attentions.0.query.weight");
    assert_eq!(near.len(), 3);
    assert!(near
        .iter()
        .all(|k| k.starts_with("mid_block.attentions.0.to_")));
    assert_names(
        &err.to_string(),
        &[
            "`mid_block.attentions.0.query.weight`",
            "not found",
            &path.display().to_string(),
            "`mid_block.attentions.0.to_q.weight`",
        ],
    );
    assert_eq!(ck.unused_keys().len(), keys.len());
}

#[test]
fn shape_mismatch_names_both_shapes() {
    let dir = tmp();
    let path = dir.path().join("diffusion_pytorch_model.safetensors");
    write(&path, &[&f16_raw("conv_in.weight", &[8, 3, 3, 3], 1)]);
    let ck = Checkpoint::open(dir.path(), None, None, DIFFUSERS_STEM).unwrap();
    let msg = message(ck.tensor(gpu(), "conv_in.weight", &[8, 6, 3, 3]));
    assert_names(
        &msg,
        &[
            "`conv_in.weight`",
            &path.display().to_string(),
            "[8, 3, 3, 3]",
            "[8, 6, 3, 3]",
        ],
    );
    // Same element count, different shape: still an error.
    assert!(ck.tensor(gpu(), "conv_in.weight", &[24, 3, 3]).is_err());
    assert_eq!(ck.unused_keys(), ["conv_in.weight"]);
}

#[test]
fn unsupported_dtype_names_dtype_key_and_file() {
    let dir = tmp();
    let path = dir.path().join("model.safetensors");
    write(
        &path,
        &[
            &i64_raw("text_model.embeddings.position_ids", &[1, 77]),
            &f32_raw("ok", &[1], 1),
        ],
    );
    let ck = Checkpoint::open(dir.path(), None, None, TRANSFORMERS_STEM).unwrap();
    assert_eq!(
        ck.dtype("text_model.embeddings.position_ids"),
        Some(FileDType::I64)
    );
    let msg = message(ck.tensor(gpu(), "text_model.embeddings.position_ids", &[1, 77]));
    assert_names(
        &msg,
        &[
            "I64",
            "`text_model.embeddings.position_ids`",
            &path.display().to_string(),
        ],
    );
}

/// Every way a file can be cut or garbled gives a `Corrupt` error naming the file, never a panic.
#[test]
fn truncated_and_corrupt_files() {
    let dir = tmp();
    let good = dir.path().join("good.safetensors");
    write(&good, &[&f32_raw("a", &[16, 4], 1), &f16_raw("b", &[9], 2)]);
    let bytes = std::fs::read(&good).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("three_bytes", bytes[..3].to_vec()),
        ("header_cut", bytes[..8 + header / 2].to_vec()),
        ("data_cut", bytes[..bytes.len() - 5].to_vec()),
        ("data_padded", [bytes.clone(), vec![0; 4]].concat()),
        ("huge_header_len", {
            let mut b = bytes.clone();
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
        ("not_json", {
            let mut b = bytes.clone();
            b[8..8 + header].fill(b'x');
            b
        }),
        ("not_utf8", {
            let mut b = bytes.clone();
            b[9] = 0xff;
            b
        }),
    ];
    // Every prefix of the file, for good measure.
    for cut in (0..bytes.len()).step_by(7) {
        cases.push(("prefix", bytes[..cut].to_vec()));
    }
    for (name, data) in cases {
        let path = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&path, &data).unwrap();
        let err = Checkpoint::open_file(&path).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{name}: {err}");
        assert_names(
            &err.to_string(),
            &[&path.display().to_string(), "not a valid safetensors file"],
        );
    }
    assert!(Checkpoint::open_file(&good).is_ok());
}

#[test]
fn bad_shard_indexes() {
    let dir = tmp();
    let a = f32_raw("a", &[2], 1);
    let b = f32_raw("b", &[2], 2);
    let s1 = "diffusion_pytorch_model-00001-of-00002.safetensors";
    let s2 = "diffusion_pytorch_model-00002-of-00002.safetensors";
    write(&dir.path().join(s1), &[&a]);
    write(&dir.path().join(s2), &[&b]);
    let index = dir
        .path()
        .join("diffusion_pytorch_model.safetensors.index.json");
    let open = || Checkpoint::open(dir.path(), None, None, DIFFUSERS_STEM);

    std::fs::write(&index, "{ not json").unwrap();
    assert_names(&message(open()), &["index.json", "weight_map"]);

    std::fs::write(&index, r#"{"weight_map": {}}"#).unwrap();
    assert_names(&message(open()), &["index.json", "no weights"]);

    // A shard that is not there.
    write_index(&index, &[(s1, &[&a]), ("missing.safetensors", &[&b])]);
    assert_names(&message(open()), &["missing.safetensors", s1, s2]);

    // A key the named shard does not hold.
    write_index(&index, &[(s1, &[&a, &b])]);
    assert_names(&message(open()), &["`b`", s1, "does not hold it"]);

    // Shard names outside the folder are refused.
    write_index(&index, &[("../x.safetensors", &[&a])]);
    assert_names(&message(open()), &["../x.safetensors", "plain file name"]);

    // A corrupt shard is named.
    std::fs::write(dir.path().join(s2), b"garbage!garbage").unwrap();
    write_index(&index, &[(s1, &[&a]), (s2, &[&b])]);
    assert_names(&message(open()), &[s2, "not a valid safetensors file"]);
}

#[test]
fn wrong_file_stem_is_pointed_out() {
    let dir = tmp();
    write(
        &dir.path().join("model.safetensors"),
        &[&f32_raw("a", &[1], 1)],
    );
    let msg = message(Checkpoint::open(dir.path(), None, None, DIFFUSERS_STEM));
    assert_names(
        &msg,
        &[
            "diffusion_pytorch_model.safetensors",
            "model.safetensors is not named diffusion_pytorch_model",
        ],
    );
}

#[test]
fn uploads_flush_every_few_bytes() {
    let dir = tmp();
    let raws: Vec<Raw> = (0..6)
        .map(|i| f16_raw(&format!("w{i}"), &[5 + i, 3], 30 + i as u32))
        .collect();
    write(
        &dir.path().join("model.safetensors"),
        &raws.iter().collect::<Vec<_>>(),
    );
    let ck = Checkpoint::open(dir.path(), None, None, TRANSFORMERS_STEM).unwrap();
    ck.set_flush_every(64);
    let tensors: Vec<_> = raws
        .iter()
        .map(|r| ck.tensor(gpu(), &r.key, &r.shape).unwrap())
        .collect();
    for (t, r) in tensors.iter().zip(&raws) {
        assert_eq!(t.to_bytes().unwrap(), r.bytes);
    }
}

#[test]
fn checkpoints_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Checkpoint>();
    send_sync::<iterinv_models::KeyIndex>();
}
