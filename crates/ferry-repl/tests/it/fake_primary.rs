//! Edge cases that real servers do not produce on demand, played by a scripted primary on a
//! local socket: marks split anywhere, keep-alives, LOADING, silence, garbage, cut
//! transfers, GETACK timing.

use std::io::Read;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferry_repl::resp::{command, FrameDecoder, Limits, Mode};
use ferry_repl::{
    snapshot_channel, ConnectOptions, PsyncOutcome, ReplError, ReplicaConnection, RetryPolicy,
    SnapshotFraming,
};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REPLID: &str = "8f1c2b3a4d5e6f708192a3b4c5d6e7f809a1b2c3";
const MARK: &[u8; 40] = b"5e0c9a17d2b84f63a0e7c1d9b2f45a8e6c3d0b71";

/// The primary's end of one connection.
struct Fake {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Fake {
    async fn listen() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        (listener, address)
    }

    async fn accept(listener: &TcpListener) -> Fake {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        Fake {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(Mode::Requests, Limits::default()),
        }
    }

    /// The next command the replica sent, or `None` when it closed the connection.
    async fn read_command(&mut self) -> Option<Vec<String>> {
        loop {
            if let Some((frame, _)) = self.decoder.decode(&mut self.buf).unwrap() {
                let args = frame.command_args().expect("a command");
                return Some(
                    args.iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                );
            }
            if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Answers the handshake; returns the PSYNC command (unanswered).
    async fn handshake(&mut self) -> Vec<String> {
        loop {
            let args = self.read_command().await.expect("handshake command");
            match args[0].as_str() {
                "PING" => self.write(b"+PONG\r\n").await,
                "PSYNC" => return args,
                _ => self.write(b"+OK\r\n").await,
            }
        }
    }

    async fn full_resync(&mut self, offset: i64) {
        self.handshake().await;
        self.write(format!("+FULLRESYNC {REPLID} {offset}\r\n").as_bytes())
            .await;
    }

    /// Waits for `REPLCONF ACK <n>` and returns n.
    async fn expect_ack(&mut self) -> i64 {
        let args = self.read_command().await.expect("an ACK");
        assert_eq!(args[..2], ["REPLCONF", "ACK"], "{args:?}");
        assert_eq!(args.len(), 3);
        args[2].parse().unwrap()
    }
}

fn quick_options() -> ConnectOptions {
    ConnectOptions {
        read_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A diskless transfer written in the given pieces; the replica must hand out exactly
/// `payload`, send its first ACK, then read the commands that follow it.
async fn diskless_transfer(payload: Vec<u8>, cuts: Vec<usize>) {
    let (listener, address) = Fake::listen().await;
    let wire = {
        let mut wire = b"\n\n$EOF:".to_vec();
        wire.extend_from_slice(MARK);
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&payload);
        wire.extend_from_slice(MARK);
        wire
    };
    let primary = tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        fake.full_resync(1000).await;
        let mut cuts = cuts;
        cuts.push(wire.len());
        cuts.sort_unstable();
        let mut written = 0;
        for cut in cuts {
            fake.write(&wire[written..cut]).await;
            fake.stream.flush().await.unwrap();
            written = cut;
            tokio::task::yield_now().await;
        }
        // Like a real primary: nothing more until the replica's first ACK.
        let first_ack = fake.expect_ack().await;
        fake.write(&command(&["SET", "k", "v"])).await;
        first_ack
    });

    let mut conn = ReplicaConnection::connect(&address, quick_options())
        .await
        .unwrap();
    conn.psync(None, -1).await.unwrap();
    let mut stream = conn.snapshot().await.unwrap();
    assert_eq!(stream.framing(), SnapshotFraming::EndMark);
    let mut received = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received, payload);
    let set = conn.next_command().await.unwrap();
    assert_eq!(set.args, [&b"SET"[..], b"k", b"v"]);
    assert_eq!(
        set.offset_after,
        1000 + command(&["SET", "k", "v"]).len() as i64
    );
    // Nothing applied yet after a full resync: the first ACK says 0.
    assert_eq!(primary.await.unwrap(), 0);
}

/// Payloads full of near-misses: pieces of the mark, and the mark with one byte changed.
fn tricky_payload() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..50),
        (1usize..40).prop_map(|len| MARK[..len].to_vec()),
        (0usize..40).prop_map(|at| {
            let mut near = MARK.to_vec();
            near[at] ^= 1;
            near
        }),
    ];
    proptest::collection::vec(piece, 0..12)
        .prop_map(|pieces| pieces.concat())
        // The mark is random in real transfers; a payload holding it cannot be told apart.
        .prop_filter("payload must not contain the mark", |payload| {
            let framed = [payload.as_slice(), MARK].concat();
            framed.windows(40).position(|w| w == MARK) == Some(payload.len())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_end_mark_is_found_however_the_bytes_are_split(
        payload in tricky_payload(),
        cut_fractions in proptest::collection::vec(0.0f64..1.0, 0..10),
    ) {
        // Header + payload + mark, to place the cuts anywhere in it.
        let total = 49 + payload.len() + 40;
        let cuts = cut_fractions.iter().map(|f| (f * total as f64) as usize).collect();
        runtime().block_on(diskless_transfer(payload, cuts));
    }
}

#[test]
fn a_mark_arriving_one_byte_at_a_time_is_found() {
    let payload = [&b"REDIS0011"[..], &MARK[..39], b"tail"].concat();
    let total = 49 + payload.len() + 40;
    runtime().block_on(diskless_transfer(payload, (1..total).collect()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sized_snapshot_ends_exactly_where_commands_begin() {
    let (listener, address) = Fake::listen().await;
    let snapshot = b"REDIS0011-not-really-an-rdb-but-bytes\r\n*1\r\n".to_vec();
    let commands = [command(&["SELECT", "0"]), command(&["PING"])].concat();
    let expected = snapshot.clone();
    let after = commands.len() as i64;
    tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        fake.handshake().await;
        // Keep-alives before the reply and before the snapshot header.
        fake.write(b"\n\r\n").await;
        fake.write(format!("+FULLRESYNC {REPLID} 500\r\n\n\n").as_bytes())
            .await;
        let mut wire = format!("${}\r\n", snapshot.len()).into_bytes();
        wire.extend_from_slice(&snapshot);
        wire.extend_from_slice(&commands);
        fake.write(&wire).await;
        while fake.read_command().await.is_some() {}
    });

    let mut conn = ReplicaConnection::connect(&address, quick_options())
        .await
        .unwrap();
    let outcome = conn.psync(None, -1).await.unwrap();
    assert_eq!(
        outcome,
        PsyncOutcome::FullResync {
            replid: REPLID.into(),
            offset: 500
        }
    );
    let mut stream = conn.snapshot().await.unwrap();
    assert_eq!(
        stream.framing(),
        SnapshotFraming::Sized(expected.len() as u64)
    );
    let mut received = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received, expected);
    let select = conn.next_command().await.unwrap();
    assert!(select.is("select"));
    let ping = conn.next_command().await.unwrap();
    assert!(ping.is_protocol_only());
    assert_eq!(ping.offset_after, 500 + after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psync_is_retried_while_the_primary_is_loading() {
    let (listener, address) = Fake::listen().await;
    let primary = tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        let mut psyncs = vec![fake.handshake().await];
        for _ in 0..2 {
            fake.write(b"-LOADING Redis is loading the dataset in memory\r\n")
                .await;
            psyncs.push(fake.read_command().await.unwrap());
        }
        fake.write(format!("+CONTINUE {REPLID}\r\n").as_bytes())
            .await;
        psyncs
    });
    let options = ConnectOptions {
        psync_retry: RetryPolicy {
            max_attempts: 5,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        },
        ..quick_options()
    };
    let mut conn = ReplicaConnection::connect(&address, options).await.unwrap();
    let outcome = conn.psync(Some(REPLID), 41).await.unwrap();
    assert_eq!(
        outcome,
        PsyncOutcome::Continue {
            replid: REPLID.into()
        }
    );
    let psyncs = primary.await.unwrap();
    assert_eq!(psyncs.len(), 3);
    // The wire carries the first offset wanted: one past the last applied.
    assert!(psyncs.iter().all(|p| p == &["PSYNC", REPLID, "42"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psync_gives_up_when_loading_lasts() {
    let (listener, address) = Fake::listen().await;
    tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        fake.handshake().await;
        loop {
            fake.write(b"-LOADING Redis is loading the dataset in memory\r\n")
                .await;
            if fake.read_command().await.is_none() {
                break;
            }
        }
    });
    let options = ConnectOptions {
        psync_retry: RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        },
        ..quick_options()
    };
    let mut conn = ReplicaConnection::connect(&address, options).await.unwrap();
    match conn.psync(None, -1).await {
        Err(ReplError::ServerError(message)) => {
            assert!(
                message.contains("LOADING") && message.contains("3 PSYNC attempts"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let (listener, address) = Fake::listen().await;
    let _keep = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(stream);
    });
    let started = Instant::now();
    let result = ReplicaConnection::connect(
        &address,
        ConnectOptions {
            read_timeout: Duration::from_millis(200),
            ..ConnectOptions::default()
        },
    )
    .await;
    assert!(
        matches!(result, Err(ReplError::Timeout { .. })),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_server_that_is_not_redis_is_a_protocol_error() {
    let (listener, address) = Fake::listen().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    match ReplicaConnection::connect(&address, quick_options()).await {
        Err(error @ ReplError::Protocol { .. }) => {
            assert!(error.to_string().contains("HTTP/1.1"), "{error}")
        }
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_cut_short_fails_both_ends_of_the_channel() {
    let (listener, address) = Fake::listen().await;
    tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        fake.full_resync(0).await;
        fake.write(b"$1000\r\nREDIS0011 and then nothing").await;
        // Dropping the fake closes the connection mid-snapshot.
    });
    let mut conn = ReplicaConnection::connect(&address, quick_options())
        .await
        .unwrap();
    conn.psync(None, -1).await.unwrap();
    let stream = conn.snapshot().await.unwrap();
    let (sender, mut reader) = snapshot_channel(2);
    let decoder = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        let error = reader.read_to_end(&mut all).unwrap_err();
        (all, error.to_string())
    });
    let forwarded = stream.forward(sender).await;
    assert!(
        matches!(forwarded, Err(ReplError::Closed(_))),
        "{forwarded:?}"
    );
    let (bytes, error) = decoder.await.unwrap();
    assert_eq!(bytes, b"REDIS0011 and then nothing");
    assert!(error.contains("closed the connection"), "{error}");
    // The connection cannot be used any more.
    assert!(matches!(
        conn.next_command().await,
        Err(ReplError::InvalidState(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_text_in_the_command_stream_is_refused() {
    let (listener, address) = Fake::listen().await;
    tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        fake.handshake().await;
        fake.write(format!("+CONTINUE {REPLID}\r\n").as_bytes())
            .await;
        fake.write(b"SET a b\r\n").await;
        while fake.read_command().await.is_some() {}
    });
    let mut conn = ReplicaConnection::connect(&address, quick_options())
        .await
        .unwrap();
    conn.psync(Some(REPLID), 10).await.unwrap();
    match conn.next_command().await {
        Err(ReplError::Protocol { what, .. }) => assert!(what.contains("inline"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getack_is_answered_at_once_with_the_applied_offset() {
    let (listener, address) = Fake::listen().await;
    let ping = command(&["PING"]);
    let ping_len = ping.len() as i64;
    let primary = tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        fake.handshake().await;
        fake.write(format!("+CONTINUE {REPLID}\r\n").as_bytes())
            .await;
        let on_start = fake.expect_ack().await;
        fake.write(&ping).await;
        fake.write(&command(&["REPLCONF", "GETACK", "*"])).await;
        let answer = tokio::time::timeout(Duration::from_secs(2), fake.expect_ack())
            .await
            .expect("an ACK right after GETACK");
        (on_start, answer)
    });
    let options = ConnectOptions {
        ack_interval: Duration::from_secs(600),
        ..quick_options()
    };
    let mut conn = ReplicaConnection::connect(&address, options).await.unwrap();
    conn.psync(Some(REPLID), 100).await.unwrap();
    let acks = conn.ack_handle();
    let first = conn.next_command().await.unwrap();
    assert_eq!(first.offset_after, 100 + ping_len);
    acks.set_applied(first.offset_after);
    let getack = conn.next_command().await.unwrap();
    assert!(getack.is_getack() && getack.is_protocol_only());
    let (on_start, answer) = primary.await.unwrap();
    // A resume is applied up to its offset by definition.
    assert_eq!(on_start, 100);
    assert_eq!(answer, 100 + ping_len);
    // Offsets only move forward.
    acks.set_applied(5);
    assert_eq!(acks.applied(), 100 + ping_len);
}

/// Answers the handshake, then PSYNC with `reply`; returns the PSYNC the replica sent.
async fn primary_answering_psync_with(listener: TcpListener, reply: String) -> Vec<String> {
    let mut fake = Fake::accept(&listener).await;
    let psync = fake.handshake().await;
    fake.write(reply.as_bytes()).await;
    // Keep the connection open until the replica gives up on it.
    while fake.read_command().await.is_some() {}
    psync
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_to_a_request_for_a_full_copy_is_refused() {
    // With no state there is nothing to continue: a primary that says +CONTINUE to
    // `PSYNC ? -1` would leave the replica "in sync" at an offset it never received.
    for reply in [
        format!("+CONTINUE {REPLID}\r\n"),
        "+CONTINUE\r\n".to_owned(),
    ] {
        let (listener, address) = Fake::listen().await;
        let primary = tokio::spawn(primary_answering_psync_with(listener, reply.clone()));
        let mut conn = ReplicaConnection::connect(&address, quick_options())
            .await
            .unwrap();
        match conn.psync(None, -1).await {
            Err(error @ ReplError::Protocol { .. }) => {
                let text = error.to_string();
                assert!(
                    text.contains("+CONTINUE") && text.contains("PSYNC ? -1"),
                    "{reply:?}: {text}"
                );
            }
            other => panic!("{reply:?}: {other:?}"),
        }
        drop(conn);
        assert_eq!(primary.await.unwrap(), ["PSYNC", "?", "-1"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_with_a_malformed_replication_id_is_refused() {
    // A replid of the wrong length or with other characters is not an ID we can resume
    // from later; the stream that follows belongs to no known history.
    for bad in [
        "short",
        "8f1c2b3a4d5e6f708192a3b4c5d6e7f809a1b2c3x",
        "8f1c2b3a4d5e6f708192a3b4c5d6e7f809a1b2c!",
    ] {
        let (listener, address) = Fake::listen().await;
        tokio::spawn(primary_answering_psync_with(
            listener,
            format!("+CONTINUE {bad}\r\n"),
        ));
        let mut conn = ReplicaConnection::connect(&address, quick_options())
            .await
            .unwrap();
        let result = conn.psync(Some(REPLID), 10).await;
        assert!(
            matches!(result, Err(ReplError::Protocol { .. })),
            "{bad}: {result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_after_a_failover_takes_the_new_replication_id() {
    // A promoted replica continues the old ID and announces its own (+CONTINUE <new>).
    const NEW: &str = "0000000000111111111122222222223333333333";
    let (listener, address) = Fake::listen().await;
    tokio::spawn(primary_answering_psync_with(
        listener,
        format!("+CONTINUE {NEW}\r\n"),
    ));
    let mut conn = ReplicaConnection::connect(&address, quick_options())
        .await
        .unwrap();
    let outcome = conn.psync(Some(REPLID), 10).await.unwrap();
    assert_eq!(outcome, PsyncOutcome::Continue { replid: NEW.into() });
    assert_eq!(conn.offset(), 10);
}

/// Plays a full resync followed by `after` (header, body, whatever), then holds the
/// connection open until the replica closes it.
async fn full_resync_then(listener: TcpListener, after: Vec<u8>) {
    let mut fake = Fake::accept(&listener).await;
    fake.full_resync(0).await;
    fake.write(&after).await;
    while fake.read_command().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_snapshot_headers_are_one_line_errors() {
    for header in [
        &b"$-5\r\n"[..],
        b"$abc\r\n",
        b"*-3\r\n",
        b"$EOF:short\r\n",
        b"\x16\x03\x01\x00\xa5garbage\r\n",
        &[b'$'; 5000],
    ] {
        let (listener, address) = Fake::listen().await;
        tokio::spawn(full_resync_then(listener, header.to_vec()));
        let mut conn = ReplicaConnection::connect(&address, quick_options())
            .await
            .unwrap();
        conn.psync(None, -1).await.unwrap();
        let shown = String::from_utf8_lossy(&header[..header.len().min(20)]).into_owned();
        match conn.snapshot().await {
            Err(error @ ReplError::Protocol { .. }) => {
                let text = error.to_string();
                assert!(!text.contains('\n') && text.len() < 400, "{shown}: {text}");
            }
            Err(other) => panic!("{shown}: {other:?}"),
            Ok(stream) => panic!("{shown}: accepted as {:?}", stream.framing()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_announced_snapshot_cut_short_ends_in_one_error() {
    // 99,999,999,999,999 bytes announced: nothing is allocated for it; the bytes are
    // passed on as they come, and the cut is an error, not a hang.
    let (listener, address) = Fake::listen().await;
    tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        fake.full_resync(0).await;
        fake.write(b"$99999999999999\r\nREDIS0011").await;
    });
    let mut conn = ReplicaConnection::connect(&address, quick_options())
        .await
        .unwrap();
    conn.psync(None, -1).await.unwrap();
    let mut stream = conn.snapshot().await.unwrap();
    assert_eq!(stream.framing(), SnapshotFraming::Sized(99_999_999_999_999));
    let mut received = Vec::new();
    let error = loop {
        match stream.next_chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("a cut snapshot ended as complete"),
            Err(error) => break error,
        }
    };
    assert_eq!(received, b"REDIS0011");
    assert!(matches!(error, ReplError::Closed(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_in_the_command_stream_are_protocol_errors() {
    for frame in [
        &b"*-3\r\n"[..],
        b"*2\r\n$-5\r\n",
        b"*1\r\n$99999999999999\r\n",
        b"*99999999999\r\n",
        b"*1\r\n$3\r\nabcdef\r\n",
        b":12\r\n",
        b"\x00\xff\xfe garbage",
    ] {
        let (listener, address) = Fake::listen().await;
        let wire = frame.to_vec();
        tokio::spawn(async move {
            let mut fake = Fake::accept(&listener).await;
            fake.handshake().await;
            fake.write(format!("+CONTINUE {REPLID}\r\n").as_bytes())
                .await;
            fake.write(&wire).await;
            while fake.read_command().await.is_some() {}
        });
        let mut conn = ReplicaConnection::connect(&address, quick_options())
            .await
            .unwrap();
        conn.psync(Some(REPLID), 10).await.unwrap();
        let shown = String::from_utf8_lossy(frame).into_owned();
        let result = tokio::time::timeout(Duration::from_secs(3), conn.next_command())
            .await
            .unwrap_or_else(|_| panic!("{shown:?}: no answer within 3 s"));
        match result {
            Err(error @ ReplError::Protocol { .. }) => {
                assert!(!error.to_string().contains('\n'), "{error}")
            }
            other => panic!("{shown:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sized_snapshot_drip_fed_one_byte_at_a_time_still_arrives_whole() {
    let (listener, address) = Fake::listen().await;
    let snapshot = b"REDIS0011\xfa\x09redis-ver\x057.0.0\xff12345678".to_vec();
    let set = command(&["SET", "k", "v"]);
    let wire = [
        format!("${}\r\n", snapshot.len()).into_bytes(),
        snapshot.clone(),
        set.to_vec(),
    ]
    .concat();
    tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        fake.full_resync(7).await;
        for byte in wire {
            fake.write(&[byte]).await;
            fake.stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        while fake.read_command().await.is_some() {}
    });
    let mut conn = ReplicaConnection::connect(&address, quick_options())
        .await
        .unwrap();
    conn.psync(None, -1).await.unwrap();
    let mut stream = conn.snapshot().await.unwrap();
    let mut received = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received, snapshot);
    let command = conn.next_command().await.unwrap();
    assert_eq!(command.args, [&b"SET"[..], b"k", b"v"]);
    assert_eq!(command.offset_after, 7 + set.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_timeout_bounds_the_handshake_too() {
    // A primary that answers PING and then nothing: the handshake before PSYNC is part
    // of connecting, bounded by the connect timeout, not by the (long) read timeout.
    let (listener, address) = Fake::listen().await;
    tokio::spawn(async move {
        let mut fake = Fake::accept(&listener).await;
        let ping = fake.read_command().await;
        assert_eq!(ping.as_deref(), Some(&["PING".to_owned()][..]));
        fake.write(b"+PONG\r\n").await;
        while fake.read_command().await.is_some() {}
    });
    let started = Instant::now();
    let result = ReplicaConnection::connect(
        &address,
        ConnectOptions {
            connect_timeout: Duration::from_millis(500),
            read_timeout: Duration::from_secs(20),
            ..ConnectOptions::default()
        },
    )
    .await;
    match result {
        Err(error @ ReplError::Timeout { .. }) => {
            assert!(error.to_string().contains("500ms"), "{error}")
        }
        other => panic!("{:?}", other.err()),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
