//! The scope on a snapshot's items: a left-out key's items are dropped whole (start,
//! parts, end), a left-out database's `SelectDb`/`ResizeDb` with it, and kept keys land
//! in their mapped database.

use crate::error::Error;
use crate::filter::Scope;
use crate::transforms::Transform;
use ferry_codec::Item;

pub struct ScopeTransform {
    scope: Scope,
    /// The database the items are in (from the last `SelectDb`).
    db: u64,
    /// Inside a left-out key: its parts and end go too.
    dropping: bool,
    counts: ScopeCounts,
}

/// Keys kept and left out, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeCounts {
    pub kept: u64,
    pub left_out: u64,
}

enum Fate {
    Pass,
    Drop,
    Rewrite,
}

impl ScopeTransform {
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            db: 0,
            dropping: false,
            counts: ScopeCounts::default(),
        }
    }

    /// The transform a scope needs: none when it keeps everything, so that the
    /// transforms after it keep their fast paths.
    pub fn for_scope(scope: Scope) -> Option<Self> {
        (!scope.is_everything()).then(|| Self::new(scope))
    }

    pub fn counts(&self) -> ScopeCounts {
        self.counts
    }

    /// The report line: what the scope kept.
    pub fn report_line(&self) -> String {
        format!(
            "scope {}: {} keys kept, {} left out",
            self.scope.describe(),
            self.counts.kept,
            self.counts.left_out
        )
    }

    /// What happens to `item`, with the state updated as if it had.
    fn fate(&mut self, item: &Item) -> Fate {
        match item {
            Item::SelectDb(db) => {
                self.db = *db;
                self.whole_db()
            }
            Item::ResizeDb { .. } => self.whole_db(),
            Item::KeyStart(header) => {
                self.db = header.db;
                if self.scope.keeps(header.db, &header.key) {
                    self.counts.kept += 1;
                    self.whole_db()
                } else {
                    self.counts.left_out += 1;
                    self.dropping = true;
                    Fate::Drop
                }
            }
            Item::Part(_) if self.dropping => Fate::Drop,
            Item::KeyEnd if self.dropping => {
                self.dropping = false;
                Fate::Drop
            }
            _ => Fate::Pass,
        }
    }

    /// An item of the current database as a whole: dropped, moved, or as it is.
    fn whole_db(&self) -> Fate {
        if !self.scope.keeps_db(self.db) {
            Fate::Drop
        } else if self.scope.target_db(self.db) != self.db {
            Fate::Rewrite
        } else {
            Fate::Pass
        }
    }
}

impl Transform for ScopeTransform {
    fn apply(&mut self, item: Item, out: &mut Vec<Item>) -> Result<(), Error> {
        match self.fate(&item) {
            Fate::Pass => out.push(item),
            Fate::Drop => {}
            Fate::Rewrite => out.push(match item {
                Item::SelectDb(db) => Item::SelectDb(self.scope.target_db(db)),
                Item::KeyStart(mut header) => {
                    header.db = self.scope.target_db(header.db);
                    Item::KeyStart(header)
                }
                other => other,
            }),
        }
        Ok(())
    }

    fn passes_unchanged(&mut self, item: &Item) -> Result<bool, Error> {
        // Only items that pass as they are may take the fast path, and the state must
        // then be as after `apply`; the others leave it untouched for `apply`.
        let before = (self.db, self.dropping, self.counts);
        if let Fate::Pass = self.fate(item) {
            return Ok(true);
        }
        (self.db, self.dropping, self.counts) = before;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferry_codec::{KeyHeader, Kind, ValuePart};

    fn key(db: u64, name: &str) -> Vec<Item> {
        vec![
            Item::KeyStart(KeyHeader {
                db,
                key: Bytes::copy_from_slice(name.as_bytes()),
                expire_at_ms: None,
                idle_secs: None,
                freq: None,
                kind: Kind::String,
                encoding: ferry_codec::types::STRING,
                len: None,
            }),
            Item::Part(ValuePart::String(Bytes::from_static(b"v"))),
            Item::KeyEnd,
        ]
    }

    fn run(scope: Scope, items: Vec<Item>) -> Vec<Item> {
        let mut transform = ScopeTransform::new(scope);
        let mut out = Vec::new();
        for item in items {
            if transform.passes_unchanged(&item).unwrap() {
                out.push(item);
            } else {
                transform.apply(item, &mut out).unwrap();
            }
        }
        out
    }

    #[test]
    fn left_out_keys_and_databases_go_whole_and_kept_ones_move() {
        let scope = Scope::new(&["app:*".into()], &[], &[0, 3], &["3:1".into()]).unwrap();
        let mut items = vec![Item::SelectDb(0)];
        items.extend(key(0, "app:1"));
        items.extend(key(0, "other"));
        items.push(Item::SelectDb(2));
        items.push(Item::ResizeDb {
            keys: 1,
            expires: 0,
        });
        items.extend(key(2, "app:2"));
        items.push(Item::SelectDb(3));
        items.extend(key(3, "app:3"));
        items.push(Item::End { checksum: None });

        let mut expected = vec![Item::SelectDb(0)];
        expected.extend(key(0, "app:1"));
        expected.push(Item::SelectDb(1));
        expected.extend(key(1, "app:3"));
        expected.push(Item::End { checksum: None });
        assert_eq!(run(scope, items), expected);
    }
}
