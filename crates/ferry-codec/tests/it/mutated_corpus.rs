//! Thousands of seeded mutations of what each real server saves and DUMPs. Every decode must
//! end in well-formed items or in an error naming a byte of the input: never a panic, never
//! longer than [`DECODE_LIMIT`], never one allocation above [`ALLOCATION_CAP`]. An input
//! that breaks a rule is saved under the target's tmp folder for replay.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use crate::mutation::check::{self, Chunked};
use crate::mutation::mutate::{mutate, Mutant, Rng};
use crate::mutation::samples::{self, Samples, Split};
use ferry_codec::DecodeError;
use ferry_testkit::ServerKind;

/// A decode of these small inputs takes milliseconds; this long means a hang.
const DECODE_LIMIT: Duration = Duration::from_secs(2);
/// The inputs are at most a few hundred KB: an allocation this large trusted a length.
const ALLOCATION_CAP: usize = 256 << 20;
const WHOLE_FILE_MUTATIONS: usize = 300;
const TYPE_FILE_MUTATIONS: usize = 200;
const PAYLOAD_MUTATIONS: usize = 2000;
const SEED: u64 = 0x5eed_f022_c0de_c0de;
const WORKER_PREFIX: &str = "mutations of ";

// ---------------------------------------------------------------------------------------
// The allocator: refuses, and names the input, when a decode asks for too much at once.

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Where the last panic in this thread happened.
    static PANIC_AT: RefCell<String> = const { RefCell::new(String::new()) };
    /// Set while this thread decodes a mutated input.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// That input's description, for the report of a refused allocation.
    static DECODING: RefCell<String> = const { RefCell::new(String::new()) };
}

struct CappedAllocator;

impl CappedAllocator {
    fn admit(size: usize) -> bool {
        if !ARMED.try_with(Cell::get).unwrap_or(false) {
            return true;
        }
        LARGEST_ALLOCATION.fetch_max(size, Ordering::Relaxed);
        if size <= ALLOCATION_CAP {
            return true;
        }
        // Refusing makes the caller abort the process: say first which input it was.
        let _ = ARMED.try_with(|armed| armed.set(false));
        let _ = DECODING.try_with(|what| {
            let what = what.try_borrow();
            let what = what.as_deref().map(String::as_str).unwrap_or("?");
            let _ = writeln!(
                std::io::stderr(),
                "decoding {what} asked for {size} bytes in one allocation"
            );
        });
        false
    }
}

// SAFETY: every call is passed to the system allocator unchanged, or refused with null.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::admit(layout.size()) {
            System.alloc(layout)
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::admit(layout.size()) {
            System.alloc_zeroed(layout)
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::admit(new_size) {
            System.realloc(ptr, layout, new_size)
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

// ---------------------------------------------------------------------------------------
// Jobs: which inputs to mutate, how, and what a decode of one must satisfy.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    File,
    Payload,
}

struct Input {
    bytes: Vec<u8>,
    /// Offsets where records start (see `mutate`).
    hints: Vec<usize>,
}

struct Job {
    name: String,
    target: Target,
    inputs: Vec<Input>,
    mutations: usize,
}

/// What happened to one mutated input.
enum Verdict {
    Decoded { outcome: &'static str },
    Broken { problem: String },
}

struct Decoded {
    index: usize,
    what: String,
    bytes: Vec<u8>,
    verdict: Verdict,
    elapsed: Duration,
}

enum Event {
    Decoded(Decoded),
    Finished,
}

/// The case being decoded, for the watchdog's report of a hang.
#[derive(Default)]
struct Current {
    what: String,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Tally {
    decodes: usize,
    outcomes: BTreeMap<&'static str, usize>,
    slowest: Duration,
    failures: Vec<String>,
}

fn outcome_name(error: Option<&DecodeError>) -> &'static str {
    match error {
        None => "ok",
        Some(DecodeError::Io { .. }) => "io",
        Some(DecodeError::Truncated { .. }) => "truncated",
        Some(DecodeError::BadMagic { .. }) => "bad magic",
        Some(DecodeError::Invalid { .. }) => "invalid",
        Some(DecodeError::Unsupported { .. }) => "unsupported",
        Some(DecodeError::Structure { .. }) => "structure",
        Some(DecodeError::Checksum { .. }) => "checksum",
        Some(_) => "other",
    }
}

/// Makes one mutated input of a job: files get a correct checksum half of the time (so some
/// decode to the end), payloads nearly always (their checksum is checked before anything).
fn make_case(job: &Job, rng: &mut Rng) -> Mutant {
    let input = &job.inputs[rng.index(job.inputs.len())];
    match job.target {
        Target::File => {
            let mut mutant = mutate(rng, &input.bytes, &input.hints);
            if rng.chance(2) && mutant.bytes.len() >= 17 {
                let covered = mutant.bytes.len() - 8;
                let crc = ferry_codec::crc64(&mutant.bytes[..covered]);
                mutant.bytes[covered..].copy_from_slice(&crc.to_le_bytes());
                mutant.what.push_str(", checksum restored");
            }
            mutant
        }
        Target::Payload if rng.chance(16) => mutate(rng, &input.bytes, &input.hints),
        Target::Payload => {
            let body = &input.bytes[..input.bytes.len() - 8];
            let mut mutant = mutate(rng, body, &input.hints);
            let crc = ferry_codec::crc64(&mutant.bytes);
            mutant.bytes.extend_from_slice(&crc.to_le_bytes());
            mutant.what.push_str(", checksum recomputed");
            mutant
        }
    }
}

fn judge(target: Target, bytes: &[u8], rng: &mut Rng) -> Verdict {
    let result = match target {
        Target::File => {
            // A quarter of the files again, through small reads: same items, same error.
            let compare = rng.chance(4);
            let whole = check::decode_file(bytes, bytes.len() as u64, compare);
            whole.and_then(|whole| {
                if compare {
                    let chunk = 1 + rng.index(64);
                    let chunked = check::decode_file(
                        Chunked { data: bytes, chunk },
                        bytes.len() as u64,
                        true,
                    )?;
                    if !chunked.same_as(&whole) {
                        return Err(format!(
                            "reads of {chunk} bytes decode differently: {} items, error {:?} vs {} items, error {:?}",
                            whole.items, whole.error, chunked.items, chunked.error
                        ));
                    }
                }
                Ok(outcome_name(whole.error.as_ref()))
            })
        }
        Target::Payload => {
            check::decode_payload(bytes).map(|result| outcome_name(result.err().as_ref()))
        }
    };
    match result {
        Ok(outcome) => Verdict::Decoded { outcome },
        Err(problem) => Verdict::Broken { problem },
    }
}

/// Decodes every mutation of every job in one worker thread, announcing each result.
fn run_jobs(jobs: Vec<Job>, seed: u64, current: Arc<Mutex<Current>>, events: mpsc::Sender<Event>) {
    for job in &jobs {
        let mut rng = Rng::new(seed ^ fnv(job.name.as_bytes()));
        for index in 0..job.mutations {
            let mutant = make_case(job, &mut rng);
            let what = format!("{} mutation {index} ({})", job.name, mutant.what);
            {
                let mut current = current.lock().unwrap();
                current.what.clone_from(&what);
                current.bytes.clone_from(&mutant.bytes);
            }
            DECODING.with(|d| d.borrow_mut().clone_from(&what));
            let mut judge_rng = Rng::new(rng.next_u64());
            let started = Instant::now();
            ARMED.with(|armed| armed.set(true));
            let verdict = catch_unwind(AssertUnwindSafe(|| {
                judge(job.target, &mutant.bytes, &mut judge_rng)
            }));
            ARMED.with(|armed| armed.set(false));
            let elapsed = started.elapsed();
            let verdict = verdict.unwrap_or_else(|panic| Verdict::Broken {
                problem: format!(
                    "panicked at {}: {}",
                    PANIC_AT.with(|at| at.borrow().clone()),
                    panic_text(&*panic)
                ),
            });
            let sent = events.send(Event::Decoded(Decoded {
                index,
                what,
                bytes: mutant.bytes,
                verdict,
                elapsed,
            }));
            if sent.is_err() {
                return;
            }
        }
    }
    let _ = events.send(Event::Finished);
}

/// Decoding threads note where a panic happened instead of printing it with a backtrace:
/// the failure list names the input, the place and the message.
fn note_worker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let worker = std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with(WORKER_PREFIX));
            if worker {
                let at = info.location().map(ToString::to_string);
                PANIC_AT.with(|place| *place.borrow_mut() = at.unwrap_or_default());
            } else {
                default(info);
            }
        }));
    });
}

/// Runs the jobs under a watchdog: a decode that does not finish within [`DECODE_LIMIT`]
/// fails the test (its input saved) instead of hanging it.
fn run_watched(label: &str, jobs: Vec<Job>) -> Tally {
    note_worker_panics();
    let current = Arc::new(Mutex::new(Current::default()));
    let (sender, events) = mpsc::channel();
    let worker_current = Arc::clone(&current);
    let seed = SEED ^ fnv(label.as_bytes());
    std::thread::Builder::new()
        .name(format!("{WORKER_PREFIX}{label}"))
        .spawn(move || run_jobs(jobs, seed, worker_current, sender))
        .expect("cannot start the decoding thread");
    let mut tally = Tally::default();
    loop {
        match events.recv_timeout(DECODE_LIMIT) {
            Ok(Event::Decoded(decoded)) => record(&mut tally, decoded),
            Ok(Event::Finished) => return tally,
            Err(RecvTimeoutError::Timeout) => {
                let current = current.lock().unwrap();
                let saved = save_input(&current.what, &current.bytes);
                panic!(
                    "{} did not finish decoding within {DECODE_LIMIT:?}: a hang; input saved at {}",
                    current.what,
                    saved.display()
                );
            }
            Err(RecvTimeoutError::Disconnected) => panic!("{label}: the decoding thread died"),
        }
    }
}

fn record(tally: &mut Tally, decoded: Decoded) {
    tally.decodes += 1;
    tally.slowest = tally.slowest.max(decoded.elapsed);
    let problem = match decoded.verdict {
        Verdict::Decoded { outcome } if decoded.elapsed <= DECODE_LIMIT => {
            *tally.outcomes.entry(outcome).or_default() += 1;
            return;
        }
        Verdict::Decoded { .. } => format!("took {:?}", decoded.elapsed),
        Verdict::Broken { problem } => problem,
    };
    let saved = save_input(&decoded.what, &decoded.bytes);
    tally.failures.push(format!(
        "{}: {problem}\n    input saved at {} (case {})",
        decoded.what,
        saved.display(),
        decoded.index
    ));
}

fn save_input(what: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mutated_corpus");
    let name: String = what
        .split(" (")
        .next()
        .unwrap_or(what)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}.bin"));
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, bytes));
    path
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".into()
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------
// The samples, checked clean first.

/// Offsets where the decoder starts each item of a clean file.
fn record_starts(file: &[u8]) -> Vec<usize> {
    let mut decoder = ferry_codec::Decoder::new(file);
    let mut starts = Vec::new();
    loop {
        let start = decoder.bytes_read() as usize;
        match decoder.next_item() {
            Ok(Some(_)) => starts.push(start),
            _ => break,
        }
    }
    // The header only ever gives "bad magic"; mutations are better spent elsewhere.
    starts.retain(|start| *start > 0);
    starts.dedup();
    starts
}

/// The unmutated samples decode cleanly, to everything the server said it holds.
fn check_clean(samples: &Samples) {
    let kind = samples.kind;
    let whole = check::decode_file(&samples.whole[..], samples.whole.len() as u64, false)
        .unwrap_or_else(|e| panic!("{kind}: the saved file breaks a rule: {e}"));
    assert!(
        whole.error.is_none(),
        "{kind}: the saved file fails to decode: {:?}",
        whole.error
    );
    assert_eq!(
        whole.keys,
        samples.payloads.len(),
        "{kind}: keys in the saved file"
    );
    for (type_byte, file) in &samples.by_type {
        let outcome = check::decode_file(&file[..], file.len() as u64, false)
            .unwrap_or_else(|e| panic!("{kind}: the type {type_byte} file breaks a rule: {e}"));
        assert!(
            outcome.error.is_none(),
            "{kind}: the type {type_byte} file fails: {:?}",
            outcome.error
        );
        let expected = samples
            .payloads
            .iter()
            .filter(|d| d.type_byte() == *type_byte)
            .count();
        assert_eq!(
            outcome.keys, expected,
            "{kind}: keys in the type {type_byte} file"
        );
    }
    for dumped in &samples.payloads {
        let header = check::decode_payload(&dumped.payload)
            .unwrap_or_else(|e| panic!("{kind}: DUMP of {:?} breaks a rule: {e}", dumped.key))
            .unwrap_or_else(|e| panic!("{kind}: DUMP of {:?} fails: {e}", dumped.key));
        assert_eq!(
            header.kind.type_name(),
            dumped.type_name,
            "{kind}: DUMP of {:?}",
            dumped.key
        );
    }
}

fn jobs_for(samples: &Samples) -> Vec<Job> {
    let kind = samples.kind;
    let file = |name: String, bytes: &Vec<u8>, mutations| Job {
        name,
        target: Target::File,
        inputs: vec![Input {
            hints: record_starts(bytes),
            bytes: bytes.clone(),
        }],
        mutations,
    };
    let mut jobs = vec![file(
        format!("{kind} whole file"),
        &samples.whole,
        WHOLE_FILE_MUTATIONS,
    )];
    for (type_byte, bytes) in &samples.by_type {
        jobs.push(file(
            format!("{kind} type-{type_byte} file"),
            bytes,
            TYPE_FILE_MUTATIONS,
        ));
    }
    // Payloads by type byte, each type getting an equal share whatever its key count.
    let mut by_type = BTreeMap::<u8, Vec<Input>>::new();
    for dumped in &samples.payloads {
        by_type.entry(dumped.type_byte()).or_default().push(Input {
            bytes: dumped.payload.clone(),
            // After the type byte: the value's first length.
            hints: vec![1],
        });
    }
    let share = PAYLOAD_MUTATIONS / by_type.len().max(1);
    for (type_byte, inputs) in by_type {
        jobs.push(Job {
            name: format!("{kind} type-{type_byte} DUMP"),
            target: Target::Payload,
            inputs,
            mutations: share,
        });
    }
    jobs
}

fn mutated_inputs_of(kind: ServerKind) {
    let started = Instant::now();
    let samples = samples::collect(kind, Split::ByType).unwrap_or_else(|e| panic!("{kind}: {e:#}"));
    check_clean(&samples);
    let collected = started.elapsed();
    let jobs = jobs_for(&samples);
    let files: usize = jobs
        .iter()
        .filter(|j| j.target == Target::File)
        .map(|j| j.mutations)
        .sum();
    let tally = run_watched(kind.name(), jobs);
    eprintln!(
        "{kind}: {} mutated decodes ({files} files, {} payloads; whole file {} bytes, {} type files, {} keys, left out {:?}) in {:?} after {collected:?} collecting; outcomes {:?}; slowest {:?}; largest allocation so far {} bytes",
        tally.decodes,
        tally.decodes - files,
        samples.whole.len(),
        samples.by_type.len(),
        samples.payloads.len(),
        samples
            .left_out
            .iter()
            .map(|(key, size)| format!("{} ({size} bytes)", String::from_utf8_lossy(key)))
            .collect::<Vec<_>>(),
        started.elapsed() - collected,
        tally.outcomes,
        tally.slowest,
        LARGEST_ALLOCATION.load(Ordering::Relaxed),
    );
    assert!(
        tally.failures.is_empty(),
        "{kind}: {} of {} mutated inputs broke a rule:\n{}",
        tally.failures.len(),
        tally.decodes,
        tally.failures[..tally.failures.len().min(20)].join("\n")
    );
    // Mutations that all stopped at the checksum would have tested nothing but it.
    let reached_values = tally.decodes
        - tally.outcomes.get("checksum").copied().unwrap_or(0)
        - tally.outcomes.get("ok").copied().unwrap_or(0);
    assert!(
        reached_values * 4 > tally.decodes,
        "{kind}: only {reached_values} of {} mutations failed inside the data: {:?}",
        tally.decodes,
        tally.outcomes
    );
    assert!(
        tally.outcomes.get("ok").is_some_and(|n| *n > 0),
        "{kind}: no mutated input decoded: {:?}",
        tally.outcomes
    );
}

#[test]
fn redis_6_0_mutations_end_in_items_or_errors() {
    mutated_inputs_of(ServerKind::Redis60);
}

#[test]
fn redis_7_0_mutations_end_in_items_or_errors() {
    mutated_inputs_of(ServerKind::Redis70);
}

#[test]
fn redis_8_0_mutations_end_in_items_or_errors() {
    mutated_inputs_of(ServerKind::Redis80);
}

#[test]
fn valkey_8_0_mutations_end_in_items_or_errors() {
    mutated_inputs_of(ServerKind::Valkey80);
}

#[test]
fn valkey_8_1_mutations_end_in_items_or_errors() {
    mutated_inputs_of(ServerKind::Valkey81);
}

#[test]
fn valkey_9_1_mutations_end_in_items_or_errors() {
    mutated_inputs_of(ServerKind::Valkey91);
}

/// Writes seed inputs for the fuzz targets (`crates/ferry-codec/fuzz/README.md`):
/// `cargo xtask test -p ferry-codec --test it -- --ignored mutated_corpus::write_fuzz_seeds`.
/// Into `$FERRY_FUZZ_SEEDS`, by default `build/fuzz/seeds`.
#[test]
#[ignore = "writes fuzzing seeds; run by hand"]
fn write_fuzz_seeds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("FERRY_FUZZ_SEEDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("build/fuzz/seeds"));
    let files = dir.join("decode_file");
    let dumps = dir.join("decode_dump");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::create_dir_all(&dumps).unwrap();
    let (mut file_count, mut dump_count) = (0, 0);
    for kind in ServerKind::all() {
        let by_type =
            samples::collect(kind, Split::ByType).unwrap_or_else(|e| panic!("{kind}: {e:#}"));
        check_clean(&by_type);
        std::fs::write(files.join(format!("{kind}-whole")), &by_type.whole).unwrap();
        file_count += 1;
        for (type_byte, bytes) in &by_type.by_type {
            std::fs::write(files.join(format!("{kind}-type-{type_byte}")), bytes).unwrap();
            file_count += 1;
        }
        let samples =
            samples::collect(kind, Split::SmallestKey).unwrap_or_else(|e| panic!("{kind}: {e:#}"));
        for (type_byte, bytes) in &samples.by_type {
            std::fs::write(files.join(format!("{kind}-key-type-{type_byte}")), bytes).unwrap();
            file_count += 1;
        }
        // The smallest payload of each type byte: small inputs mutate fastest.
        let mut smallest = BTreeMap::<u8, &samples::Dumped>::new();
        for dumped in &samples.payloads {
            let entry = smallest.entry(dumped.type_byte()).or_insert(dumped);
            if dumped.payload.len() < entry.payload.len() {
                *entry = dumped;
            }
        }
        for (type_byte, dumped) in smallest {
            std::fs::write(
                dumps.join(format!("{kind}-type-{type_byte}")),
                &dumped.payload,
            )
            .unwrap();
            dump_count += 1;
        }
    }
    eprintln!(
        "wrote {file_count} file seeds and {dump_count} DUMP seeds under {}",
        dir.display()
    );
}
