//! Which keys and databases a run moves: `--match`/`--exclude` globs on the key,
//! `--db` databases, and `--db-map SRC:DST` (where a source database lands on the
//! target). One [`Scope`] serves every command: the snapshot's items
//! (`transforms::filter`), the replicated command stream, `verify` and `assess`.
//!
//! A key is kept when (no `--match`, or it matches one) and it matches no `--exclude`,
//! and its database is one of `--db` (when given). Two kept source databases never land
//! in the same target database: their keys could collide, and which write won would
//! depend on order, so such a map is refused when the scope is made.

mod glob;

pub use glob::Glob;

use std::collections::{BTreeMap, BTreeSet};

/// The scope flags, shared by every command that takes them (flatten into its clap
/// struct).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Keep only keys matching this glob (Redis's KEYS/SCAN syntax: `*` `?` `[abc]` `[^a]` `[a-z]`
    /// \x); repeatable, a key matching any one is kept.
    #[arg(long = "match", value_name = "GLOB")]
    pub matches: Vec<String>,
    /// Leave out keys matching this glob; repeatable; wins over --match.
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Keep only this database; repeatable.
    #[arg(long = "db", value_name = "N")]
    pub dbs: Vec<u64>,
    /// Write source database SRC into target database DST (e.g. 3:0); repeatable. Two
    /// kept databases may not land in one.
    #[arg(long = "db-map", value_name = "SRC:DST")]
    pub db_map: Vec<String>,
}

impl FilterArgs {
    pub fn scope(&self) -> Result<Scope, ScopeError> {
        Scope::new(&self.matches, &self.excludes, &self.dbs, &self.db_map)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    matches: Vec<Glob>,
    excludes: Vec<Glob>,
    /// `None`: every database.
    dbs: Option<BTreeSet<u64>>,
    /// Source database → target database; absent ones stay where they are.
    map: BTreeMap<u64, u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("--db-map {0:?}: expected SRC:DST, two database numbers (e.g. 3:0)")]
    MapSyntax(String),
    #[error("--db-map maps db {0} twice")]
    MapTwice(u64),
    #[error("--db-map maps db {source_db}, which --db leaves out")]
    MapOutsideDb { source_db: u64 },
    #[error(
        "db {first} and db {second} would both land in db {target_db} of the target, where \
         keys of the same name would overwrite each other; keep one of them with --db, or \
         map the other elsewhere"
    )]
    Collision {
        first: u64,
        second: u64,
        target_db: u64,
    },
}

impl Scope {
    /// `map` entries are `SRC:DST` as given on the command line.
    pub fn new(
        matches: &[String],
        excludes: &[String],
        dbs: &[u64],
        map: &[String],
    ) -> Result<Self, ScopeError> {
        let mut pairs = BTreeMap::new();
        for entry in map {
            let (from, to) = parse_map(entry)?;
            if pairs.insert(from, to).is_some() {
                return Err(ScopeError::MapTwice(from));
            }
        }
        let dbs = (!dbs.is_empty()).then(|| dbs.iter().copied().collect::<BTreeSet<u64>>());
        if let Some(kept) = &dbs {
            if let Some(&source_db) = pairs.keys().find(|db| !kept.contains(db)) {
                return Err(ScopeError::MapOutsideDb { source_db });
            }
        }
        let scope = Self {
            matches: matches.iter().map(|m| Glob::new(m)).collect(),
            excludes: excludes.iter().map(|m| Glob::new(m)).collect(),
            dbs,
            map: pairs,
        };
        scope.check_collisions()?;
        Ok(scope)
    }

    /// Every kept source database that lands where another one does. Without `--db`
    /// every database is kept: a mapped database collides with the one already at its
    /// destination unless that one is mapped away too.
    fn check_collisions(&self) -> Result<(), ScopeError> {
        let mut landed: BTreeMap<u64, u64> = BTreeMap::new();
        let sources: Vec<u64> = match &self.dbs {
            Some(dbs) => dbs.iter().copied().collect(),
            None => self
                .map
                .iter()
                .flat_map(|(&from, &to)| [from, to])
                .collect(),
        };
        for source in sources {
            let target_db = self.target_db(source);
            if let Some(&first) = landed.get(&target_db) {
                if first != source {
                    return Err(ScopeError::Collision {
                        first: first.min(source),
                        second: first.max(source),
                        target_db,
                    });
                }
            }
            landed.insert(target_db, source);
        }
        Ok(())
    }

    /// Keeps everything where everything was: no filter, no map.
    pub fn is_everything(&self) -> bool {
        !self.filters() && self.map.is_empty()
    }

    /// Some key or database is left out.
    pub fn filters(&self) -> bool {
        self.filters_keys() || self.dbs.is_some()
    }

    /// `--match` or `--exclude` is given: a database is moved in part.
    pub fn filters_keys(&self) -> bool {
        !self.matches.is_empty() || !self.excludes.is_empty()
    }

    pub fn keeps_db(&self, db: u64) -> bool {
        self.dbs.as_ref().is_none_or(|dbs| dbs.contains(&db))
    }

    /// The databases kept, when `--db` names them.
    pub fn kept_dbs(&self) -> Option<&BTreeSet<u64>> {
        self.dbs.as_ref()
    }

    pub fn keeps_key(&self, key: &[u8]) -> bool {
        (self.matches.is_empty() || self.matches.iter().any(|glob| glob.matches(key)))
            && !self.excludes.iter().any(|glob| glob.matches(key))
    }

    pub fn keeps(&self, db: u64, key: &[u8]) -> bool {
        self.keeps_db(db) && self.keeps_key(key)
    }

    /// Where source database `db` lands on the target.
    pub fn target_db(&self, db: u64) -> u64 {
        self.map.get(&db).copied().unwrap_or(db)
    }

    /// The kept source database that lands in target database `db`, if one does.
    pub fn source_db(&self, target_db: u64) -> Option<u64> {
        if let Some((&from, _)) = self.map.iter().find(|(_, &to)| to == target_db) {
            return Some(from);
        }
        // Unmapped: it stays where it is, unless it was mapped away.
        (!self.map.contains_key(&target_db) && self.keeps_db(target_db)).then_some(target_db)
    }

    /// The scope in one canonical line, for logs and the state file (a resume with
    /// another scope is refused); empty when everything moves.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        parts.extend(
            self.matches
                .iter()
                .map(|g| format!("--match {:?}", g.as_str())),
        );
        parts.extend(
            self.excludes
                .iter()
                .map(|g| format!("--exclude {:?}", g.as_str())),
        );
        if let Some(dbs) = &self.dbs {
            parts.extend(dbs.iter().map(|db| format!("--db {db}")));
        }
        parts.extend(
            self.map
                .iter()
                .map(|(from, to)| format!("--db-map {from}:{to}")),
        );
        parts.join(" ")
    }
}

fn parse_map(entry: &str) -> Result<(u64, u64), ScopeError> {
    let syntax = || ScopeError::MapSyntax(entry.to_owned());
    let (from, to) = entry.split_once(':').ok_or_else(syntax)?;
    let number = |text: &str| text.trim().parse::<u64>().map_err(|_| syntax());
    Ok((number(from)?, number(to)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn scope(matches: &[&str], excludes: &[&str], dbs: &[u64], map: &[&str]) -> Scope {
        Scope::new(&strings(matches), &strings(excludes), dbs, &strings(map)).unwrap()
    }

    #[test]
    fn a_key_is_kept_when_it_matches_one_match_and_no_exclude() {
        let s = scope(&["app:*", "cfg:*"], &["app:tmp:*"], &[0, 3], &[]);
        assert!(s.keeps(0, b"app:1"));
        assert!(s.keeps(3, b"cfg:x"));
        assert!(!s.keeps(0, b"app:tmp:1"));
        assert!(!s.keeps(0, b"other"));
        assert!(!s.keeps(1, b"app:1"), "db 1 is not in --db");
        assert!(scope(&[], &["x*"], &[], &[]).keeps(7, b"y"));
        assert!(Scope::default().is_everything());
    }

    #[test]
    fn the_db_map_moves_kept_databases_and_refuses_collisions() {
        let s = scope(&[], &[], &[3], &["3:0"]);
        assert_eq!(s.target_db(3), 0);
        assert_eq!(s.source_db(0), Some(3));
        assert_eq!(s.source_db(3), None);
        let swap = scope(&[], &[], &[], &["0:1", "1:0"]);
        assert_eq!(
            (swap.target_db(0), swap.target_db(1), swap.target_db(2)),
            (1, 0, 2)
        );
        assert_eq!(swap.source_db(2), Some(2));

        let refused = |dbs: &[u64], map: &[&str]| Scope::new(&[], &[], dbs, &strings(map));
        assert_eq!(
            refused(&[], &["3:0"]),
            Err(ScopeError::Collision {
                first: 0,
                second: 3,
                target_db: 0
            })
        );
        assert!(matches!(
            refused(&[0, 3], &["3:0"]),
            Err(ScopeError::Collision { .. })
        ));
        assert!(matches!(
            refused(&[1, 2], &["1:5", "2:5"]),
            Err(ScopeError::Collision { .. })
        ));
        assert_eq!(
            refused(&[0], &["3:0"]),
            Err(ScopeError::MapOutsideDb { source_db: 3 })
        );
        assert_eq!(refused(&[], &["3:1", "3:2"]), Err(ScopeError::MapTwice(3)));
        assert!(matches!(
            refused(&[], &["x:1"]),
            Err(ScopeError::MapSyntax(_))
        ));
    }

    #[test]
    fn the_description_is_canonical() {
        let s = scope(&["a*"], &["b*"], &[3, 0], &["3:5"]);
        assert_eq!(
            s.describe(),
            r#"--match "a*" --exclude "b*" --db 0 --db 3 --db-map 3:5"#
        );
    }
}
