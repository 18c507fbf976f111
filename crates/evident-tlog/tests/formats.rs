//! Parsing and verification of the text formats, mostly what they must refuse: checkpoints,
//! signed notes and keys, cosignatures, tlog-proof receipts, tile paths and entry bundles.

use evident_tlog::*;

const ORIGIN: &str = "evident.test/formats";

fn signer(seed: u8) -> Signer {
    Signer::from_seed(ORIGIN, [seed; 32]).unwrap()
}

fn tree(size: u64) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for i in 0..size {
        tree.append(format!("entry {i}").as_bytes());
    }
    tree
}

/// Parses `input` as a checkpoint body; `expect` is `Ok(size)` or `Err(words in the message)`.
fn check_checkpoint(input: &str, expect: Result<u64, &str>) {
    match (Checkpoint::parse(input), expect) {
        (Ok(checkpoint), Ok(size)) => {
            assert_eq!(checkpoint.size, TreeSize(size), "{input:?}");
            assert_eq!(checkpoint.body(), input, "round trip");
        }
        (Err(err), Err(words)) => {
            assert!(err.to_string().contains(words), "{input:?}: {err} lacks {words:?}")
        }
        (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn checkpoint_bodies_are_parsed_strictly() {
    let root = leaf_hash(b"x").to_base64();
    check_checkpoint(&format!("{ORIGIN}\n5\n{root}\n"), Ok(5));
    check_checkpoint(&format!("{ORIGIN}\n0\n{root}\n"), Ok(0));
    check_checkpoint(&format!("{ORIGIN}\n18446744073709551615\n{root}\next one\next two\n"), Ok(u64::MAX));
    check_checkpoint(&format!("{ORIGIN}\n5\n{root}"), Err("newline"));
    check_checkpoint(&format!("\n5\n{root}\n"), Err("origin"));
    check_checkpoint(&format!("{ORIGIN}\n05\n{root}\n"), Err("canonical"));
    check_checkpoint(&format!("{ORIGIN}\n+5\n{root}\n"), Err("canonical"));
    check_checkpoint(&format!("{ORIGIN}\n-5\n{root}\n"), Err("canonical"));
    check_checkpoint(&format!("{ORIGIN}\n\n{root}\n"), Err("canonical"));
    check_checkpoint(&format!("{ORIGIN}\n18446744073709551616\n{root}\n"), Err("canonical"));
    check_checkpoint(&format!("{ORIGIN}\n5\n"), Err("root"));
    check_checkpoint(&format!("{ORIGIN}\n5\nAAAA\n"), Err("root"));
    check_checkpoint(&format!("{ORIGIN}\n5\n{}\n", root.trim_end_matches('=')), Err("root"));
    check_checkpoint(&format!("{ORIGIN}\n5\n{root}\n\n"), Err("empty extension"));
    check_checkpoint(&format!("{ORIGIN}\n5\n{root}\next\u{7}\n"), Err("control"));
    check_checkpoint(&format!("{ORIGIN}\n5\n"), Err("root"));
    check_checkpoint(ORIGIN, Err("newline"));
    // A base64 string whose last character carries non-zero padding bits decodes to the same
    // bytes in lax decoders; one hash has one spelling here.
    let mut lax = root.clone();
    lax.replace_range(42..43, "5");
    assert!(Hash::from_base64(&lax).is_err() || lax == root);
}

#[test]
fn notes_need_one_good_signature_by_a_known_key_and_no_bad_one() {
    let (log, witness_like, stranger) =
        (signer(1), Signer::from_seed("other.example", [2; 32]).unwrap(), signer(3));
    let text = "hello\nworld\n";
    let note = sign_note(text, &[&log, &witness_like, &stranger]).unwrap();
    // Every known signature verifies; the unknown one is set aside.
    let opened = open_note(&note, &[log.verifier(), witness_like.verifier()]).unwrap();
    assert_eq!(opened.text, text);
    assert_eq!((opened.verified.len(), opened.unverified.len()), (2, 1));
    assert!(matches!(open_note(&note, &[]), Err(Error::NoKnownSignature)));
    // A bad signature by a known key fails the note, even next to a good one.
    let forged = sign_note("hello\nmars\n", &[&witness_like]).unwrap();
    let forged_line = forged.lines().last().unwrap();
    let mixed = add_signature_lines(&sign_note(text, &[&log]).unwrap(), forged_line).unwrap();
    assert!(open_note(&mixed, &[log.verifier()]).is_ok(), "unknown bad signature is ignored");
    let err = open_note(&mixed, &[log.verifier(), witness_like.verifier()]).unwrap_err();
    assert!(matches!(err, Error::BadSignature(ref who) if who.starts_with("other.example+")), "{err}");
    // Repeating a line changes nothing.
    let doubled = add_signature_lines(&note, note.lines().last().unwrap()).unwrap();
    assert_eq!(doubled, note);

    for (bad, why) in [
        ("hello\n", "no blank line"),
        ("hello\n\n", "signature block is empty"),
        ("hello\n\n- evident.test/formats AAAAAAAA\n", "em dash"),
        ("hello\n\n\u{2014} evident.test/formats\n", "no signature"),
        ("hello\n\n\u{2014} evident.test/formats !!!!\n", "bad signature line"),
        ("hello\n\n\u{2014} evident.test/formats AAAA\n", "bad signature line"),
        ("hel\u{1}lo\n\n\u{2014} evident.test/formats AAAAAAAA\n", "control"),
    ] {
        let err = open_note(bad, &[log.verifier()]).unwrap_err();
        assert!(err.to_string().contains(why), "{bad:?}: {err}");
    }
    let many = format!("hello\n\n{}", "\u{2014} x AAAAAAAA\n".repeat(101));
    assert!(open_note(&many, &[log.verifier()]).unwrap_err().to_string().contains("100"));
    assert!(sign_note("no newline", &[&log]).is_err());
    assert!(sign_note("blank\n\nline\n", &[&log]).is_err());
    assert!(sign_note("fine\n", &[]).is_err());
}

#[test]
fn key_texts_round_trip_and_reject_mismatches() {
    let log = signer(4);
    assert_eq!(Signer::parse(&log.to_text()).unwrap().verifier(), log.verifier());
    assert_eq!(Verifier::parse(&log.verifier().to_vkey()).unwrap(), log.verifier());
    assert!(!format!("{log:?}").contains(&log.to_text()[20..]), "Debug must not print the secret");
    let vkey = log.verifier().to_vkey();
    let (name, rest) = vkey.split_once('+').unwrap();
    let (id, key) = rest.split_once('+').unwrap();
    for (bad, why) in [
        (format!("{name}+00000000+{key}"), "does not match"),
        (format!("{name}+{}+{key}", &id[..7]), "8 hex"),
        (format!("{name}x+{id}+{key}"), "does not match"),
        (format!("{name}+{id}+{}", &key[..20]), "not 32 bytes"),
        (format!("{name}+{id}+{}", &key[..21]), "not base64"),
        (format!("{name}+{id}"), "no key material"),
        ("has space+00000000+AAAA".to_owned(), "invalid key name"),
        (format!("{name}+{id}+Ag{}", &key[2..]), "unsupported"),
    ] {
        let err = Verifier::parse(&bad).unwrap_err();
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
    let text = log.to_text();
    assert!(Signer::parse(&text.replace("PRIVATE+KEY", "PUBLIC+KEY")).is_err());
    assert!(Signer::parse(&text.replacen(&format!("{:08x}", log.key_id()), "00000000", 1)).is_err());
    assert!(Signer::from_seed("two words", [0; 32]).is_err());
    assert!(Signer::from_seed("a+b", [0; 32]).is_err());
    assert!(Signer::from_seed("", [0; 32]).is_err());
}

#[test]
fn witness_cosignatures_verify_and_are_bound_to_time_and_text() {
    let log = signer(5);
    let witness = Cosigner::from_seed("witness.test/w1", [6; 32]).unwrap();
    let tree = tree(10);
    let checkpoint = Checkpoint::new(ORIGIN, tree.size(), tree.root());
    let note = checkpoint.sign(&[&log]).unwrap();
    let line = witness.cosign(&checkpoint.body(), 1_700_000_123).unwrap();
    let cosigned = add_signature_lines(&note, &line).unwrap();
    let vkey = witness.verifier().to_vkey();
    let verifier = Verifier::parse(&vkey).unwrap();
    assert_eq!(verifier.alg(), ALG_COSIGNATURE_V1);
    let (_, opened) = Checkpoint::open(&cosigned, &[log.verifier(), verifier.clone()], ORIGIN).unwrap();
    assert_eq!(opened.verified.len(), 2);
    assert_eq!(opened.verified[1].cosignature_time(), Some(1_700_000_123));
    // The witness alone suffices to open the note, and its signature covers the time.
    assert!(Checkpoint::open(&cosigned, std::slice::from_ref(&verifier), ORIGIN).is_ok());
    let other_time = witness.cosign(&checkpoint.body(), 1_700_000_124).unwrap();
    let (prefix, _) = line.rsplit_once(' ').unwrap();
    let (_, other_sig) = other_time.rsplit_once(' ').unwrap();
    let (_, sig) = line.rsplit_once(' ').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut spliced = b64.decode(other_sig.trim_end()).unwrap();
    spliced[12..].copy_from_slice(&b64.decode(sig.trim_end()).unwrap()[12..]);
    let spliced_line = format!("{prefix} {}\n", b64.encode(spliced));
    let forged = add_signature_lines(&note, &spliced_line).unwrap();
    assert!(matches!(
        Checkpoint::open(&forged, &[log.verifier(), verifier.clone()], ORIGIN),
        Err(Error::BadSignature(_))
    ));
    // The same key as a plain note verifier has another key id: the cosignature is unknown to it.
    assert!(witness.cosign("no newline", 1).is_err());
    assert!(witness.cosign("x\n", u64::MAX).is_err());
}

fn receipt_for(tree: &MemoryTree, index: u64, signer: &Signer) -> TlogProof {
    TlogProof {
        extra: None,
        index: LeafIndex(index),
        proof: tree.inclusion_proof(LeafIndex(index), tree.size()).unwrap(),
        checkpoint: Checkpoint::new(ORIGIN, tree.size(), tree.root()).sign(&[signer]).unwrap(),
    }
}

#[test]
fn receipts_reject_malformed_text() {
    let log = signer(7);
    let tree = tree(21);
    let receipt = receipt_for(&tree, 13, &log);
    let text = receipt.to_text();
    assert_eq!(TlogProof::parse(&text).unwrap(), receipt);
    let with_extra = TlogProof { extra: Some(b"evt".to_vec()), ..receipt.clone() };
    assert_eq!(TlogProof::parse(&with_extra.to_text()).unwrap(), with_extra);
    assert!(with_extra.verify(b"entry 13", &[log.verifier()], ORIGIN).is_ok());
    for (bad, why) in [
        (text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1), "first line"),
        (text.replacen("index 13", "index 013", 1), "canonical"),
        (text.replacen("index 13", "index -13", 1), "canonical"),
        (text.replacen("index 13", "idx 13", 1), "index line"),
        (text.replacen("index 13\n", "index 13\n!!!!\n", 1), "proof line 1"),
        (text.replacen("\n\n", "\n", 1), "proof line"),
        (text.split("\n\n").next().unwrap().to_owned(), "no blank line"),
        (text.replacen("index 13", "extra ***\nindex 13", 1), "extra"),
    ] {
        let err = TlogProof::parse(&bad).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let beyond = TlogProof { index: LeafIndex(21), ..receipt.clone() };
    assert!(matches!(beyond.verify(b"entry 13", &[log.verifier()], ORIGIN), Err(Error::InvalidPosition(_))));
    assert!(matches!(
        receipt.verify(b"entry 13", &[log.verifier()], "other/log"),
        Err(Error::WrongOrigin { .. })
    ));
    assert!(matches!(
        receipt.verify(b"entry 13", &[signer(8).verifier()], ORIGIN),
        Err(Error::NoKnownSignature)
    ));
}

#[test]
fn any_single_bit_flip_of_a_receipt_is_rejected() {
    let log = signer(9);
    let tree = tree(1_000);
    let receipt = receipt_for(&tree, 611, &log);
    let text = receipt.to_text().into_bytes();
    assert!(receipt.verify(b"entry 611", &[log.verifier()], ORIGIN).is_ok());
    let mut flips = 0;
    for byte in 0..text.len() {
        for bit in 0..8 {
            let mut bad = text.clone();
            bad[byte] ^= 1 << bit;
            let verdict = std::str::from_utf8(&bad)
                .map_err(|_| ())
                .and_then(|s| TlogProof::parse(s).map_err(drop))
                .and_then(|r| r.verify(b"entry 611", &[log.verifier()], ORIGIN).map_err(drop));
            assert!(
                verdict.is_err(),
                "flip of bit {bit} in byte {byte} ({:?}) was accepted",
                text[byte] as char
            );
            flips += 1;
        }
    }
    assert_eq!(flips, text.len() * 8);
}

#[test]
fn tile_paths_are_parsed_strictly() {
    let ok = |path: &str, want: TilePath| assert_eq!(TilePath::parse(path).unwrap(), want, "{path}");
    ok("tile/0/000", TilePath::Hashes(TileId { level: 0, index: 0, width: 256 }));
    ok("tile/63/x001/999.p/255", TilePath::Hashes(TileId { level: 63, index: 1999, width: 255 }));
    ok(
        "tile/entries/x072/x057/x594/x037/x927/935",
        TilePath::Entries(BundleId { index: (1 << 56) - 1, width: 256 }),
    );
    ok("tile/entries/x001/234.p/7", TilePath::Entries(BundleId { index: 1234, width: 7 }));
    for (bad, why) in [
        ("tiles/0/000", "tile/"),
        ("tile/0", "no tile index"),
        ("tile/64/000", "above 63"),
        ("tile/01/000", "leading zero"),
        ("tile/-1/000", "not a decimal"),
        ("tile/0/00", "three digits"),
        ("tile/0/0000", "three digits"),
        ("tile/0/1a3", "three digits"),
        ("tile/0/001/002", "must start with x"),
        ("tile/0/x001", "must not start with x"),
        ("tile/0/x000/001", "leading zero group"),
        ("tile/0/000.p/0", "width 0"),
        ("tile/0/000.p/256", "above 255"),
        ("tile/0/000.p/010", "leading zero"),
        ("tile/0/000.p", ".p must be followed"),
        ("tile/0/x001.p/5/000", ".p must be followed"),
        ("tile/0/x018/x446/x744/x073/x709/x551/616", "overflows"),
        ("tile/entries/x072/x057/x594/x037/x927/936", "beyond any log"),
        ("tile/0/x072/x057/x594/x037/x927/936", "beyond any log"),
        ("tile/7/001", "beyond any log"),
        ("tile/0/", "three digits"),
        ("tile/entries/", "three digits"),
    ] {
        let err = TilePath::parse(bad).unwrap_err();
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
}

#[test]
fn tiles_and_bundles_refuse_what_does_not_fit() {
    let tree = tree(300);
    // Reading a node out of the wrong tile, or past a partial tile's width.
    let tile = TileId { level: 0, index: 1, width: 44 };
    let data = tree.tile(tile).unwrap();
    assert_eq!(
        tile.hash_of(&data, NodeId::new(0, 299)).unwrap(),
        tree.read_hashes(&[NodeId::new(0, 299)]).unwrap()[0]
    );
    assert_eq!(
        tile.hash_of(&data, NodeId::new(2, 66)).unwrap(),
        tree.read_hashes(&[NodeId::new(2, 66)]).unwrap()[0]
    );
    assert!(tile.hash_of(&data, NodeId::new(0, 300)).is_err());
    assert!(tile.hash_of(&data, NodeId::new(0, 3)).is_err());
    assert!(tile.hash_of(&data[1..], NodeId::new(0, 299)).is_err());
    assert!(tree.tile(TileId { level: 0, index: 1, width: 45 }).is_err());
    assert!(TileId::containing(NodeId::new(0, 300), TreeSize(300)).is_err());
    assert_eq!(
        TileId::containing(NodeId::new(8, 0), TreeSize(300)).unwrap(),
        TileId { level: 1, index: 0, width: 1 }
    );

    let mut bundle = Vec::new();
    push_bundle_entry(&mut bundle, &vec![1u8; MAX_ENTRY_LEN]).unwrap();
    assert!(matches!(
        push_bundle_entry(&mut bundle, &vec![1u8; MAX_ENTRY_LEN + 1]),
        Err(Error::EntryTooLarge(65536))
    ));
    push_bundle_entry(&mut bundle, b"").unwrap();
    assert_eq!(parse_bundle(&bundle).unwrap().len(), 2);
    assert!(parse_bundle(&bundle[..bundle.len() - 1]).is_err(), "lone byte");
    assert!(parse_bundle(&bundle[..100]).is_err(), "truncated entry");
    let mut too_many = Vec::new();
    for _ in 0..257 {
        push_bundle_entry(&mut too_many, b"x").unwrap();
    }
    assert!(parse_bundle(&too_many).is_err());
    assert_eq!(
        bundles_for_growth(TreeSize(200), TreeSize(600)),
        vec![
            BundleId { index: 0, width: 256 },
            BundleId { index: 1, width: 256 },
            BundleId { index: 2, width: 88 },
        ]
    );
    assert_eq!(BundleId { index: 2, width: 88 }.leaf_range(), 512..600);
}

#[test]
fn trees_refuse_sizes_they_do_not_have() {
    let tree = tree(10);
    assert!(tree.root_at(TreeSize(11)).is_err());
    assert!(tree.inclusion_proof(LeafIndex(10), TreeSize(10)).is_err());
    assert!(tree.inclusion_proof(LeafIndex(0), TreeSize(11)).is_err());
    assert!(tree.consistency_proof(TreeSize(5), TreeSize(11)).is_err());
    assert!(tree.consistency_proof(TreeSize(6), TreeSize(5)).is_err());
    assert!(tree.consistency_proof(TreeSize(0), TreeSize(5)).is_err());
    assert_eq!(tree.consistency_proof(TreeSize(5), TreeSize(5)).unwrap(), vec![]);
    assert_eq!(MemoryTree::new().root(), empty_root());
    assert_eq!(Frontier::new().root(), empty_root());
    assert!(Hash::from_hex("zz").is_err());
    assert!(Hash::from_slice(&[0; 31]).is_err());
}
