//! Drives items from a source through transforms into a sink.

use crate::error::Error;
use crate::sinks::{Sink, SinkStats};
use crate::sources::Source;
use crate::transforms::filter::ScopeTransform;
use crate::transforms::Transform;
use ferry_codec::Item;
use std::time::{Duration, Instant};

/// [`run`] through `compat` (the policies), behind `scoped` when there is one: the scope
/// goes first, so that the policies see only kept keys.
pub fn run_scoped<S: Source + ?Sized, K: Sink + ?Sized>(
    source: &mut S,
    scoped: Option<&mut ScopeTransform>,
    compat: &mut dyn Transform,
    sink: &mut K,
    progress: &mut dyn FnMut(u64),
) -> Result<RunStats, Error> {
    match scoped {
        Some(scoped) => run(source, &mut [scoped, compat], sink, progress),
        None => run(source, &mut [compat], sink, progress),
    }
}

/// How often, in items, the progress callback hears the source's position.
const PROGRESS_EVERY: u64 = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct RunStats {
    pub bytes_read: u64,
    pub sink: SinkStats,
    pub elapsed: Duration,
}

/// Runs the source to its end. `progress` gets the source's `bytes_read` now and then.
/// On error the sink is dropped without `finish`, which leaves no output behind.
///
/// Generic over the source and sink (which may still be `dyn`): with concrete types the
/// compiler can build each item where it is used instead of copying it out of a returned
/// `Result` and into the next call, which is measurable at millions of items.
pub fn run<S: Source + ?Sized, K: Sink + ?Sized>(
    source: &mut S,
    transforms: &mut [&mut dyn Transform],
    sink: &mut K,
    progress: &mut dyn FnMut(u64),
) -> Result<RunStats, Error> {
    let started = Instant::now();
    let mut batch = Vec::new();
    let mut scratch = Vec::new();
    let mut since_progress = 0u64;
    let by_ref = sink.takes_refs();
    let raw_strings = by_ref && source.gives_raw_strings() && sink.takes_raw_strings();
    loop {
        // The common item that the only transform passes unchanged is handed to the sink
        // from inside the source's result, not moved out of it first.
        let next = source.next_item();
        if let (true, Ok(Some(item)), [only]) = (by_ref, &next, &mut *transforms) {
            // A string key the transform passes whole goes to the sink with its value as
            // stored: not expanded, not shown as items, copied by the encoder.
            if let (true, Item::KeyStart(header)) = (raw_strings, item) {
                if header.encoding == ferry_codec::types::STRING && only.passes_whole_key(header)? {
                    let value = source.take_raw_string()?;
                    sink.push_raw_string(header, &value)?;
                    since_progress += 1;
                    if since_progress == PROGRESS_EVERY {
                        since_progress = 0;
                        progress(source.bytes_read());
                    }
                    continue;
                }
            }
            if only.passes_unchanged(item)? {
                sink.push_ref(item)?;
                since_progress += 1;
                if since_progress == PROGRESS_EVERY {
                    since_progress = 0;
                    progress(source.bytes_read());
                }
                continue;
            }
        }
        let Some(item) = next? else {
            break;
        };
        // The first transform takes the item itself: most items pass one by one, and each
        // move of an item through a batch costs (an item is over 100 bytes).
        match transforms.split_first_mut() {
            Some((first, rest)) => {
                if first.passes_unchanged(&item)? {
                    if rest.is_empty() {
                        sink.push(item)?;
                    } else {
                        batch.push(item);
                    }
                } else {
                    first.apply(item, &mut batch)?;
                }
                apply_all(rest, &mut batch, &mut scratch)?;
                for item in batch.drain(..) {
                    sink.push(item)?;
                }
            }
            None => sink.push(item)?,
        }
        since_progress += 1;
        if since_progress == PROGRESS_EVERY {
            since_progress = 0;
            progress(source.bytes_read());
        }
    }
    // What a transform releases at the end still goes through the transforms after it.
    for index in 0..transforms.len() {
        transforms[index].finish(&mut batch)?;
        apply_all(&mut transforms[index + 1..], &mut batch, &mut scratch)?;
        for item in batch.drain(..) {
            sink.push(item)?;
        }
    }
    let bytes_read = source.bytes_read();
    progress(bytes_read);
    let sink = sink.finish()?;
    Ok(RunStats {
        bytes_read,
        sink,
        elapsed: started.elapsed(),
    })
}

/// Passes `batch` through each transform in turn; `batch` holds the result.
fn apply_all(
    transforms: &mut [&mut dyn Transform],
    batch: &mut Vec<Item>,
    scratch: &mut Vec<Item>,
) -> Result<(), Error> {
    for transform in transforms.iter_mut() {
        scratch.clear();
        for item in batch.drain(..) {
            if transform.passes_unchanged(&item)? {
                scratch.push(item);
            } else {
                transform.apply(item, scratch)?;
            }
        }
        std::mem::swap(batch, scratch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_codec::RdbVersion;

    struct VecSource(std::vec::IntoIter<Item>, u64);
    impl Source for VecSource {
        fn next_item(&mut self) -> Result<Option<Item>, Error> {
            self.1 += 1;
            Ok(self.0.next())
        }
        fn bytes_read(&self) -> u64 {
            self.1
        }
        fn total_bytes(&self) -> Option<u64> {
            None
        }
    }

    #[derive(Default)]
    struct VecSink(Vec<Item>, bool);
    impl Sink for VecSink {
        fn push(&mut self, item: Item) -> Result<(), Error> {
            self.0.push(item);
            Ok(())
        }
        fn takes_refs(&self) -> bool {
            true
        }
        fn finish(&mut self) -> Result<SinkStats, Error> {
            self.1 = true;
            Ok(SinkStats::default())
        }
    }

    /// Holds every `SelectDb` back until the end, then releases them.
    #[derive(Default)]
    struct HoldSelects(Vec<Item>);
    impl Transform for HoldSelects {
        fn apply(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), Error> {
            match item {
                Item::SelectDb(_) => self.0.push(item),
                other => out.push(other),
            }
            Ok(())
        }
        fn finish(&mut self, out: &mut Vec<Item>) -> Result<(), Error> {
            out.append(&mut self.0);
            Ok(())
        }
    }

    /// Doubles every `SelectDb`.
    struct DoubleSelects;
    impl Transform for DoubleSelects {
        fn apply(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), Error> {
            if let Item::SelectDb(_) = item {
                out.push(item.clone());
            }
            out.push(item);
            Ok(())
        }
    }

    /// Passes everything unchanged by the fast path except `SelectDb`, which it drops.
    #[derive(Default)]
    struct DropSelects {
        passed: usize,
    }
    impl Transform for DropSelects {
        fn apply(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), Error> {
            if !matches!(item, Item::SelectDb(_)) {
                out.push(item);
            }
            Ok(())
        }
        fn passes_unchanged(&mut self, item: &Item) -> Result<bool, Error> {
            let passes = !matches!(item, Item::SelectDb(_));
            self.passed += usize::from(passes);
            Ok(passes)
        }
    }

    #[test]
    fn items_a_lone_transform_passes_reach_the_sink_in_order() {
        let items = vec![
            Item::Header(RdbVersion::redis(11)),
            Item::SelectDb(3),
            Item::ResizeDb {
                keys: 1,
                expires: 0,
            },
            Item::SelectDb(4),
            Item::End { checksum: None },
        ];
        let mut source = VecSource(items.into_iter(), 0);
        let mut sink = VecSink::default();
        let mut drop_selects = DropSelects::default();
        let mut seen = Vec::new();
        let stats = run(
            &mut source,
            &mut [&mut drop_selects],
            &mut sink,
            &mut |at| seen.push(at),
        )
        .unwrap();
        assert_eq!(
            sink.0,
            [
                Item::Header(RdbVersion::redis(11)),
                Item::ResizeDb {
                    keys: 1,
                    expires: 0
                },
                Item::End { checksum: None },
            ]
        );
        assert_eq!(drop_selects.passed, 3);
        assert!(sink.1, "sink finished");
        assert_eq!(stats.bytes_read, 6);
        assert_eq!(seen.last(), Some(&6));
    }

    #[test]
    fn items_released_at_finish_pass_the_later_transforms() {
        let items = vec![
            Item::Header(RdbVersion::redis(11)),
            Item::SelectDb(3),
            Item::End { checksum: None },
        ];
        let mut source = VecSource(items.into_iter(), 0);
        let mut sink = VecSink::default();
        let (mut hold, mut double) = (HoldSelects::default(), DoubleSelects);
        let stats = run(
            &mut source,
            &mut [&mut hold, &mut double],
            &mut sink,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            sink.0,
            [
                Item::Header(RdbVersion::redis(11)),
                Item::End { checksum: None },
                Item::SelectDb(3),
                Item::SelectDb(3)
            ]
        );
        assert!(sink.1, "sink finished");
        assert_eq!(stats.bytes_read, 4);
    }
}
