//! The plan file (`ferry fleet run PLAN.toml`): top-level settings, `[defaults]` and one
//! `[[pair]]` per source → target. Everything is checked before anything starts; each
//! problem is one line naming the pair.

use crate::policy::Policies;
use crate::url::ServerUrl;
use ferry_repl::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Pairs migrating at once unless the plan or `--concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: u32 = 4;

/// A plan that cannot run, one line.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: [defaults]: {message}", path.display())]
    Defaults { path: PathBuf, message: String },
    #[error("{}: no [[pair]]: nothing to migrate", path.display())]
    NoPairs { path: PathBuf },
    #[error("{}: concurrency must be at least 1", path.display())]
    Concurrency { path: PathBuf },
    #[error("{}: pair {pair}: {problem}", path.display())]
    Pair {
        path: PathBuf,
        pair: String,
        problem: PairProblem,
    },
}

/// What is wrong with one `[[pair]]`. Never quotes a password.
#[derive(Debug, thiserror::Error)]
pub enum PairProblem {
    #[error("not a table")]
    NotATable,
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{0}` must be a non-empty string")]
    NotAString(&'static str),
    #[error("name {0:?}: use letters, digits, '.', '_' and '-' only (it names a folder)")]
    Name(String),
    /// serde's message: an unknown key, a wrong type.
    #[error("{0}")]
    Key(String),
    #[error("{key} {value:?}: {source}")]
    Policy {
        key: &'static str,
        value: String,
        source: crate::policy::ParsePolicyError,
    },
    #[error("give {0}_password_env or {0}_password_file, not both")]
    BothPasswords(&'static str),
    #[error("{side}: {source}")]
    Url {
        side: &'static str,
        source: crate::url::UrlError,
    },
    #[error("{0}: put the password in {0}_password_env or {0}_password_file, not in the URL")]
    PasswordInUrl(&'static str),
    #[error("{0}: Sentinel URLs are not supported in a fleet plan; name the primary")]
    Sentinel(&'static str),
    #[error("{0}: a migration copies every database; leave the /db part out of the URL")]
    Database(&'static str),
    #[error("{side}_password_env {var}: the variable is {why}")]
    Variable {
        side: &'static str,
        var: String,
        why: &'static str,
    },
    #[error("{side}_password_file {}: cannot read it: {source}", path.display())]
    FileRead {
        side: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{side}_password_file {}: {why}", path.display())]
    FileLine {
        side: &'static str,
        path: PathBuf,
        why: &'static str,
    },
    #[error("`exec` runs at the cutover, and `switch = false` makes none")]
    ExecWithoutSwitch,
    #[error("the name is used by an earlier pair")]
    DuplicateName,
    #[error("target {target} is also pair {other}'s target")]
    SharedTarget { target: String, other: String },
    #[error("source {source_address} is pair {other}'s target")]
    SourceIsTarget {
        source_address: String,
        other: String,
    },
    #[error("source and target are the same server, {0}")]
    SameServer(String),
}

/// The file's top level, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    state_dir: PathBuf,
    concurrency: Option<u32>,
    defaults: Option<toml::Value>,
    #[serde(default)]
    pair: Vec<toml::Value>,
}

/// What `[defaults]` may set and each `[[pair]]` may override (besides its name, source
/// and target).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    wave: Option<u32>,
    source_password_env: Option<String>,
    source_password_file: Option<PathBuf>,
    target_password_env: Option<String>,
    target_password_file: Option<PathBuf>,
    hash_field_ttl: Option<String>,
    vector_set: Option<String>,
    module: Option<String>,
    exec: Option<String>,
    exec_undo: Option<String>,
    switch: Option<bool>,
}

impl Settings {
    /// `self` over `defaults`, field by field. A pair's password source replaces both of
    /// the defaults' (env and file), so that the two never combine.
    fn over(self, defaults: &Settings) -> Settings {
        let (source_password_env, source_password_file) =
            match (&self.source_password_env, &self.source_password_file) {
                (None, None) => (
                    defaults.source_password_env.clone(),
                    defaults.source_password_file.clone(),
                ),
                _ => (self.source_password_env, self.source_password_file),
            };
        let (target_password_env, target_password_file) =
            match (&self.target_password_env, &self.target_password_file) {
                (None, None) => (
                    defaults.target_password_env.clone(),
                    defaults.target_password_file.clone(),
                ),
                _ => (self.target_password_env, self.target_password_file),
            };
        Settings {
            wave: self.wave.or(defaults.wave),
            source_password_env,
            source_password_file,
            target_password_env,
            target_password_file,
            hash_field_ttl: self.hash_field_ttl.or(defaults.hash_field_ttl.clone()),
            vector_set: self.vector_set.or(defaults.vector_set.clone()),
            module: self.module.or(defaults.module.clone()),
            exec: self.exec.or(defaults.exec.clone()),
            exec_undo: self.exec_undo.or(defaults.exec_undo.clone()),
            switch: self.switch.or(defaults.switch),
        }
    }
}

/// Where a side's password comes from: handed to the migration as the same flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFrom {
    Env(String),
    File(PathBuf),
}

/// One pair, checked: its URLs hold the passwords (never printed).
#[derive(Debug, Clone)]
pub struct PairPlan {
    pub name: String,
    pub wave: u32,
    pub source: ServerUrl,
    pub target: ServerUrl,
    pub source_password: Option<PasswordFrom>,
    pub target_password: Option<PasswordFrom>,
    pub policies: Policies,
    pub exec: Option<String>,
    pub exec_undo: Option<String>,
    /// Cut clients over once in sync (the default). Without: verify while the migration
    /// streams, then stop it, clients left on the source (a source that cannot pause
    /// writes, Redis before 6.2, cannot be cut over by ferry).
    pub switch: bool,
}

impl PairPlan {
    /// The policy flags for `ferry migrate`, as its command line takes them.
    pub fn policy_flags(&self) -> Vec<String> {
        vec![
            "--hash-field-ttl".into(),
            self.policies.hash_field_ttl.to_string(),
            "--vector-set".into(),
            self.policies.vector_set.to_string(),
            "--module".into(),
            self.policies.module.to_string(),
        ]
    }
}

/// The whole plan, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    /// `state_dir/<pair>/` per pair and `state_dir/fleet.json`.
    pub state_dir: PathBuf,
    pub concurrency: u32,
    /// In the file's order.
    pub pairs: Vec<PairPlan>,
}

impl Plan {
    /// The waves in ascending order, each with its pairs in the file's order.
    pub fn waves(&self) -> BTreeMap<u32, Vec<&PairPlan>> {
        let mut waves: BTreeMap<u32, Vec<&PairPlan>> = BTreeMap::new();
        for pair in &self.pairs {
            waves.entry(pair.wave).or_default().push(pair);
        }
        waves
    }
}

/// Reads and checks the plan at `path`; relative paths in it are the plan's folder's.
/// `env` reads the password variables (the process's environment outside tests).
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, env)
}

/// [`load`] on the file's text.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, PlanError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let syntax = |error: toml::de::Error| PlanError::Syntax {
        path: path.to_owned(),
        message: toml_line(text, &error),
    };
    let file: PlanFile = toml::from_str(text).map_err(syntax)?;
    let defaults: Settings = match file.defaults {
        Some(value) => value
            .try_into()
            .map_err(|e: toml::de::Error| PlanError::Defaults {
                path: path.to_owned(),
                message: e.message().replace('\n', " "),
            })?,
        None => Settings::default(),
    };
    if file.pair.is_empty() {
        return Err(PlanError::NoPairs {
            path: path.to_owned(),
        });
    }
    let concurrency = file.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        return Err(PlanError::Concurrency {
            path: path.to_owned(),
        });
    }
    let mut pairs: Vec<PairPlan> = Vec::with_capacity(file.pair.len());
    let pair_error = |(pair, problem)| PlanError::Pair {
        path: path.to_owned(),
        pair,
        problem,
    };
    for (index, value) in file.pair.into_iter().enumerate() {
        pairs.push(check_pair(index, value, &defaults, base, env).map_err(pair_error)?);
    }
    check_together(&pairs).map_err(pair_error)?;
    Ok(Plan {
        path: path.to_owned(),
        state_dir: base.join(file.state_dir),
        concurrency,
        pairs,
    })
}

/// A TOML error on one line: its message and the line it is on.
fn toml_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// A problem and the pair it is about (its name, or `#N` before the name is known).
type Named = (String, PairProblem);

/// One `[[pair]]` (the `index`-th) checked on its own.
fn check_pair(
    index: usize,
    value: toml::Value,
    defaults: &Settings,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PairPlan, Named> {
    let number = format!("#{}", index + 1);
    let toml::Value::Table(mut table) = value else {
        return Err((number, PairProblem::NotATable));
    };
    let mut take = |key: &'static str, who: &str| -> Result<String, Named> {
        match table.remove(key) {
            Some(toml::Value::String(text)) if !text.is_empty() => Ok(text),
            Some(_) => Err((who.to_owned(), PairProblem::NotAString(key))),
            None => Err((who.to_owned(), PairProblem::Missing(key))),
        }
    };
    let name = take("name", &number)?;
    if !valid_name(&name) {
        return Err((number, PairProblem::Name(name)));
    }
    let source = take("source", &name)?;
    let target = take("target", &name)?;
    let fail = |problem: PairProblem| (name.clone(), problem);
    let own: Settings = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| fail(PairProblem::Key(e.message().replace('\n', " "))))?;
    let settings = own.over(defaults);
    let policies = Policies {
        hash_field_ttl: policy(&settings.hash_field_ttl, "hash_field_ttl").map_err(fail)?,
        vector_set: policy(&settings.vector_set, "vector_set").map_err(fail)?,
        module: policy(&settings.module, "module").map_err(fail)?,
    };
    let source_password = password_from(
        "source",
        &settings.source_password_env,
        &settings.source_password_file,
        base,
    )
    .map_err(fail)?;
    let target_password = password_from(
        "target",
        &settings.target_password_env,
        &settings.target_password_file,
        base,
    )
    .map_err(fail)?;
    let source = server_url("source", &source, source_password.as_ref(), env).map_err(fail)?;
    let target = server_url("target", &target, target_password.as_ref(), env).map_err(fail)?;
    if settings.switch == Some(false) && settings.exec.is_some() {
        return Err(fail(PairProblem::ExecWithoutSwitch));
    }
    Ok(PairPlan {
        wave: settings.wave.unwrap_or(1),
        name,
        source,
        target,
        source_password,
        target_password,
        policies,
        exec: settings.exec,
        exec_undo: settings.exec_undo,
        switch: settings.switch.unwrap_or(true),
    })
}

/// Names become folders and appear in reports: no separators, no `..`.
fn valid_name(name: &str) -> bool {
    name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn policy<T>(value: &Option<String>, key: &'static str) -> Result<T, PairProblem>
where
    T: std::str::FromStr<Err = crate::policy::ParsePolicyError> + Default,
{
    match value {
        None => Ok(T::default()),
        Some(text) => text.parse().map_err(|source| PairProblem::Policy {
            key,
            value: text.clone(),
            source,
        }),
    }
}

fn password_from(
    side: &'static str,
    env: &Option<String>,
    file: &Option<PathBuf>,
    base: &Path,
) -> Result<Option<PasswordFrom>, PairProblem> {
    match (env, file) {
        (Some(_), Some(_)) => Err(PairProblem::BothPasswords(side)),
        (Some(var), None) => Ok(Some(PasswordFrom::Env(var.clone()))),
        (None, Some(path)) => Ok(Some(PasswordFrom::File(base.join(path)))),
        (None, None) => Ok(None),
    }
}

/// The side's URL with its password read: a password in the URL itself is refused (the
/// plan file is not a secret store).
fn server_url(
    side: &'static str,
    text: &str,
    password: Option<&PasswordFrom>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServerUrl, PairProblem> {
    let mut url = ServerUrl::parse(text).map_err(|source| PairProblem::Url { side, source })?;
    if url.password.is_some() {
        return Err(PairProblem::PasswordInUrl(side));
    }
    if url.sentinel.is_some() {
        return Err(PairProblem::Sentinel(side));
    }
    if url.db.is_some_and(|db| db != 0) {
        return Err(PairProblem::Database(side));
    }
    let variable = |var: &str, why| PairProblem::Variable {
        side,
        var: var.to_owned(),
        why,
    };
    url.password = match password {
        None => None,
        Some(PasswordFrom::Env(var)) => match env(var) {
            Some(value) if !value.is_empty() => Some(Secret::new(value)),
            Some(_) => return Err(variable(var, "empty")),
            None => return Err(variable(var, "not set")),
        },
        Some(PasswordFrom::File(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| PairProblem::FileRead {
                side,
                path: path.clone(),
                source,
            })?;
            let line =
                crate::connection::password_line(&text).map_err(|why| PairProblem::FileLine {
                    side,
                    path: path.clone(),
                    why,
                })?;
            Some(Secret::new(line))
        }
    };
    Ok(url)
}

/// What no two pairs may share: a name, a target; and no pair may write into a server
/// another pair reads (nor into its own source).
fn check_together(pairs: &[PairPlan]) -> Result<(), Named> {
    let mut names: BTreeMap<&str, ()> = BTreeMap::new();
    let mut targets: BTreeMap<String, &str> = BTreeMap::new();
    for pair in pairs {
        if names.insert(&pair.name, ()).is_some() {
            return Err((pair.name.clone(), PairProblem::DuplicateName));
        }
        if let Some(other) = targets.insert(pair.target.address(), &pair.name) {
            return Err((
                pair.name.clone(),
                PairProblem::SharedTarget {
                    target: pair.target.address(),
                    other: other.to_owned(),
                },
            ));
        }
    }
    for pair in pairs {
        if let Some(other) = targets.get(&pair.source.address()) {
            let problem = if *other == pair.name {
                PairProblem::SameServer(pair.source.address())
            } else {
                PairProblem::SourceIsTarget {
                    source_address: pair.source.address(),
                    other: (*other).to_owned(),
                }
            };
            return Err((pair.name.clone(), problem));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{HashFieldTtlPolicy, ModulePolicy};

    fn env(var: &str) -> Option<String> {
        (var == "PASS").then(|| "s3cret-value".to_owned())
    }

    fn plan(text: &str) -> Result<Plan, String> {
        parse(Path::new("/plans/fleet.toml"), text, &env).map_err(|e| e.to_string())
    }

    const TWO: &str = r#"
state_dir = "state"
concurrency = 2
[defaults]
target_password_env = "PASS"
module = "skip"
[[pair]]
name = "a"
source = "redis://10.0.0.1:6379"
target = "redis://10.0.1.1:6379"
[[pair]]
name = "b"
source = "redis://10.0.0.2:6379"
target = "redis://10.0.1.2:6379"
wave = 2
hash_field_ttl = "persist"
"#;

    #[test]
    fn a_plan_with_defaults_and_waves() {
        let plan = plan(TWO).unwrap();
        assert_eq!(plan.state_dir, Path::new("/plans/state"));
        assert_eq!(plan.concurrency, 2);
        let waves = plan.waves();
        assert_eq!(waves.keys().copied().collect::<Vec<_>>(), [1, 2]);
        let b = &plan.pairs[1];
        assert_eq!(b.policies.hash_field_ttl, HashFieldTtlPolicy::Persist);
        assert_eq!(b.policies.module, ModulePolicy::Skip);
        assert_eq!(b.target.password.as_ref().unwrap().expose(), "s3cret-value");
        assert_eq!(b.target_password, Some(PasswordFrom::Env("PASS".into())));
        assert!(!format!("{:?}", plan.pairs).contains("s3cret"));
    }

    #[test]
    fn the_example_in_docs_fleet_md_is_a_valid_plan() {
        let doc = include_str!("../../../../../docs/fleet.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("secrets/redis"), "from-a-file\n").unwrap();
        let plan = parse(&dir.path().join("fleet.toml"), example, &|_| {
            Some("from-a-variable".into())
        })
        .unwrap();
        assert_eq!(plan.pairs.len(), 3);
        assert_eq!(plan.waves().len(), 2);
        let [sessions, cache, legacy] = &plan.pairs[..] else {
            unreachable!()
        };
        assert_eq!(
            sessions.source.password.as_ref().unwrap().expose(),
            "from-a-file"
        );
        assert_eq!(
            cache.source.password.as_ref().unwrap().expose(),
            "from-a-variable"
        );
        assert_eq!(cache.source.username.as_deref(), Some("app"));
        assert!(!legacy.switch && sessions.switch);
        assert_eq!(legacy.policies.hash_field_ttl, HashFieldTtlPolicy::Persist);
    }

    #[test]
    fn each_problem_is_one_line_naming_the_pair() {
        let cases = [
            (
                TWO.replace("name = \"b\"", "name = \"a\""),
                "pair a: the name is used",
            ),
            (
                TWO.replace("10.0.0.2:6379", "10.0.1.1:6379"),
                "pair b: source 10.0.1.1:6379 is pair a's target",
            ),
            (
                TWO.replace("wave = 2", "wave = 2\nsourse = 1"),
                "pair b: unknown field `sourse`",
            ),
            (
                TWO.replace("\"PASS\"", "\"NOT_SET\""),
                "pair a: target_password_env NOT_SET: the variable is not set",
            ),
            (
                TWO.replace("\"persist\"", "\"keep\""),
                "pair b: hash_field_ttl \"keep\": expected",
            ),
            (
                TWO.replace("concurrency = 2", "concurrency = 2\nconcurrent = 1"),
                "unknown field `concurrent`",
            ),
            (
                TWO.replace("redis://10.0.0.1:6379", "redis://:pw@10.0.0.1:6379"),
                "pair a: source: put the password in",
            ),
            (
                TWO.replace("name = \"b\"", "name = \"../b\""),
                "pair #2: name",
            ),
            (
                TWO.replace("name = \"b\"\n", ""),
                "pair #2: `name` is missing",
            ),
            (TWO.replace("[[pair]]", "[[pair"), "line "),
        ];
        for (text, expected) in cases {
            let error = plan(&text).unwrap_err();
            assert!(error.contains(expected), "{error} (wanted {expected})");
            assert!(!error.contains('\n'), "{error}");
            assert!(!error.contains("pw") || !error.contains(":pw@"), "{error}");
        }
    }
}
