//! Property tests of the RESP decoder: any valid stream of frames, cut into pieces at random
//! places, decodes to the same frames as when it arrives whole; random bytes never panic.

use bytes::{Bytes, BytesMut};
use ferry_repl::resp::{encode_frame, Frame, FrameDecoder, Limits, Mode};
use proptest::prelude::*;

fn line_text() -> impl Strategy<Value = Bytes> {
    // Simple strings and errors cannot contain CR or LF.
    proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..20,
    )
    .prop_map(Bytes::from)
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn leaf() -> impl Strategy<Value = Frame> {
    prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        blob().prop_map(Frame::Bulk),
        Just(Frame::NullBulk),
        Just(Frame::NullArray),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |d| d.is_finite())
                .prop_map(|d| Bytes::from(d.to_string())),
            Just(Bytes::from_static(b"inf")),
            Just(Bytes::from_static(b"-nan")),
        ]
        .prop_map(Frame::Double),
        "-?[0-9]{1,40}".prop_map(|s| Frame::BigNumber(Bytes::from(s))),
        blob().prop_map(Frame::BulkError),
        ("[a-z]{3}", blob()).prop_map(|(format, text)| Frame::Verbatim {
            format: Bytes::from(format),
            text
        }),
    ]
}

fn nested() -> impl Strategy<Value = Frame> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        let items = proptest::collection::vec(inner.clone(), 0..6);
        let pairs = proptest::collection::vec((inner.clone(), inner), 0..4);
        prop_oneof![
            items.clone().prop_map(Frame::Array),
            items.clone().prop_map(Frame::Set),
            items.prop_map(Frame::Push),
            pairs.clone().prop_map(Frame::Map),
            pairs.prop_map(Frame::Attribute),
        ]
    })
}

fn top_level_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        4 => nested(),
        1 => proptest::collection::vec(blob(), 0..5).prop_map(Frame::Inline),
    ]
}

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        encode_frame(frame, &mut out);
    }
    out.to_vec()
}

/// Feeds `wire` to a decoder in pieces ending at `cuts`, decoding after each piece.
fn decode_in_pieces(wire: &[u8], mut cuts: Vec<usize>, mode: Mode) -> Vec<Frame> {
    cuts.push(wire.len());
    cuts.sort_unstable();
    let mut decoder = FrameDecoder::new(mode, Limits::default());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    for cut in cuts {
        buf.extend_from_slice(&wire[fed..cut]);
        fed = cut;
        while let Some((frame, _)) = decoder.decode(&mut buf).expect("valid input") {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty());
    frames
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_splits_decode_like_whole_input(
        frames in proptest::collection::vec(top_level_frame(), 1..6),
        cut_fractions in proptest::collection::vec(0.0f64..1.0, 0..12),
    ) {
        let wire = encode_all(&frames);
        let cuts = cut_fractions.iter().map(|f| (f * wire.len() as f64) as usize).collect();
        prop_assert_eq!(decode_in_pieces(&wire, vec![], Mode::Replies), frames.clone());
        prop_assert_eq!(decode_in_pieces(&wire, cuts, Mode::Replies), frames);
    }

    #[test]
    fn byte_by_byte_decoding_reports_exact_lengths(frame in top_level_frame()) {
        let wire = encode_all(std::slice::from_ref(&frame));
        let mut decoder = FrameDecoder::new(Mode::Replies, Limits::default());
        let mut buf = BytesMut::new();
        for (index, byte) in wire.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            match decoder.decode(&mut buf).expect("valid input") {
                Some((decoded, len)) => {
                    prop_assert_eq!(index + 1, wire.len());
                    prop_assert_eq!(len, wire.len());
                    prop_assert_eq!(&decoded, &frame);
                }
                None => prop_assert!(index + 1 < wire.len()),
            }
        }
    }

    #[test]
    fn commands_decode_in_request_mode(
        commands in proptest::collection::vec(proptest::collection::vec(blob(), 1..5), 1..5),
        cut_fractions in proptest::collection::vec(0.0f64..1.0, 0..8),
    ) {
        let mut out = BytesMut::new();
        for args in &commands {
            ferry_repl::resp::encode_command(args, &mut out);
        }
        let cuts = cut_fractions.iter().map(|f| (f * out.len() as f64) as usize).collect();
        let decoded: Vec<Vec<Bytes>> = decode_in_pieces(&out, cuts, Mode::Requests)
            .iter()
            .map(|frame| frame.command_args().expect("a command"))
            .collect();
        prop_assert_eq!(decoded, commands);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        cut_fractions in proptest::collection::vec(0.0f64..1.0, 0..6),
    ) {
        for mode in [Mode::Replies, Mode::Requests] {
            let limits = Limits { max_line_len: 32, max_bulk_len: 64, max_depth: 4 };
            let mut decoder = FrameDecoder::new(mode, limits);
            let mut cuts: Vec<usize> =
                cut_fractions.iter().map(|f| (f * bytes.len() as f64) as usize).collect();
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut buf = BytesMut::new();
            let mut fed = 0;
            'feed: for cut in cuts {
                buf.extend_from_slice(&bytes[fed..cut]);
                fed = cut;
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }

    #[test]
    fn random_bytes_after_a_valid_prefix_never_panic(
        frame in nested(),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        flip in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut wire = encode_all(std::slice::from_ref(&frame));
        let at = flip.index(wire.len());
        wire[at] = value;
        wire.extend_from_slice(&tail);
        let mut decoder = FrameDecoder::new(Mode::Replies, Limits::default());
        let mut buf = BytesMut::from(&wire[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    }
}
