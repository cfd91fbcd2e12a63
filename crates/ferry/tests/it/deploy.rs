//! deploy/: the Kubernetes manifests pass kubernetes-validate `--strict` against the newest
//! Kubernetes its pinned release knows (and a broken copy does not); the workers' and the
//! cutover's command lines are ones this build of ferry accepts, with secrets only by
//! variable name, each from a key the Secret has, and they migrate a real cluster, resume
//! a killed worker and cut all of them over; the worker count agrees everywhere; the
//! container definition fits the binary and names the image the manifests run.

use super::support::migrate::Ferry;
use super::support::tools::tools;
use super::support::FERRY;
use ferry_testkit::snapshot::DiffOptions;
use ferry_testkit::{Cluster, Server, ServerKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The newest Kubernetes release whose schemas kubernetes-validate 1.37.0 (pinned in
/// xtask/src/tools/kubernetes_validate.rs) ships.
const KUBERNETES: &str = "1.37.0";
/// The base image of deploy/container/Containerfile and what it provides.
const BASE_IMAGE: &str = "gcr.io/distroless/cc-debian12:nonroot";
const BASE_LIBRARIES: [&str; 3] = ["libc.so.6", "libm.so.6", "libgcc_s.so.1"];
/// Debian 12's glibc, the base's.
const BASE_GLIBC: (u32, u32) = (2, 36);
/// The base's `nonroot` user and group.
const NONROOT: i64 = 65532;
/// The ACL rules of docs/deploy.md's users: the workers' (docs/security.md's, and for a
/// cluster source `CLUSTER SHARDS`, by which each worker finds its share) and the
/// cutover's operations user.
const SOURCE_USER_RULES: &str =
    "resetkeys resetchannels -@all +ping +info +replconf +psync +cluster|shards";
const TARGET_USER_RULES: &str = "~* &* +@all -@admin";
const OPERATIONS_USER_RULES: &str = "~* &* +@all";
/// Set in each pod of an Indexed Job by the Job controller.
const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubernetes_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

fn validator() -> PathBuf {
    tools().kubernetes_validate.expect(
        "the tools manifest names no kubernetes-validate (written by an older xtask): run \
         `cargo xtask tools`",
    )
}

/// Every .yaml under `dir`, subfolders too (the cutover's), sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn validate(files: &[PathBuf], version: &str) -> Output {
    Command::new(validator())
        .args(["--strict", "--kubernetes-version", version])
        .args(files)
        .stdin(Stdio::null())
        .output()
        .expect("run kubernetes-validate")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The documents of a YAML file as the validator reads them: through PyYAML in its own
/// venv (a dependency of kubernetes-validate), printed as JSON.
fn documents(path: &Path) -> Vec<Value> {
    let python = validator().with_file_name("python3");
    let output = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {} ({err})", python.display()));
    assert!(
        output.status.success(),
        "{}: {}",
        path.display(),
        text(&output)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout)
        .unwrap()
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The resources of deploy/kubernetes, by kind and name.
struct Deploy {
    resources: BTreeMap<(String, String), Value>,
}

impl Deploy {
    fn load() -> Deploy {
        let mut resources = BTreeMap::new();
        for file in yaml_files(&kubernetes_dir()) {
            for doc in documents(&file) {
                let key = (
                    doc["kind"].as_str().unwrap().to_string(),
                    doc["metadata"]["name"].as_str().unwrap().to_string(),
                );
                assert!(
                    resources.insert(key.clone(), doc).is_none(),
                    "{key:?} twice"
                );
            }
        }
        Deploy { resources }
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.resources
            .get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.resources
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, doc)| doc)
            .collect()
    }

    fn workers(&self) -> &Value {
        self.get("Job", "ferry-migrate")
    }

    fn cutover(&self) -> &Value {
        self.get("Job", "ferry-cutover")
    }

    /// The Secret's keys and their (placeholder) values.
    fn secret(&self) -> BTreeMap<String, String> {
        let secret = self.get("Secret", "ferry");
        assert!(
            secret.get("data").is_none(),
            "placeholders go in stringData"
        );
        secret["stringData"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_string()))
            .collect()
    }
}

/// The one container of a Job's pods.
fn container(job: &Value) -> &Value {
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{}", job["metadata"]["name"]);
    &containers[0]
}

fn args(container: &Value) -> Vec<String> {
    assert!(
        container.get("command").is_none(),
        "the image's ENTRYPOINT is ferry; the manifests give arguments only"
    );
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap().to_string())
        .collect()
}

/// The values given to `flag` (every occurrence).
fn values_of<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|pair| pair[0] == flag)
        .map(|pair| pair[1].as_str())
        .collect()
}

/// The container's variables: name → the Secret key it comes from. A literal value or
/// another source would not be a secret's, and is refused here (the manifests need none).
fn secret_variables(container: &Value) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| {
            let name = var["name"].as_str().unwrap().to_string();
            let key = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(key["name"], "ferry", "{name} comes from the Secret ferry");
            (name, key["key"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Kubernetes's `$(NAME)` expansion, with an unknown name an error instead of left as is.
fn expand(arg: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find(')').expect("an unclosed $(") + start;
        let name = &rest[start + 2..end];
        let value = variables
            .get(name)
            .unwrap_or_else(|| panic!("{arg:?} names {name}, which the container lacks"));
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `scheme://user@host:port` with the host and port replaced.
fn rehost(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let user = rest.split_once('@').map(|(user, _)| user);
    assert!(
        !user.unwrap_or_default().contains(':'),
        "{url}: a password in a URL shows in the pod's spec"
    );
    match user {
        Some(user) => format!("{scheme}://{user}@{address}"),
        None => format!("{scheme}://{address}"),
    }
}

/// The `host:port` of `scheme://[user@]host:port[/db]`.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let address = rest.rsplit_once('@').map_or(rest, |(_, address)| address);
    address.split('/').next().unwrap().to_string()
}

/// A loopback port nothing listens on: connecting to it is refused at once.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

/// Where a manifest's command line runs in a test instead of a cluster: the servers
/// (`host:port`), the workers' status addresses (in `--status` order) and the state file.
struct Here {
    source: String,
    target: String,
    statuses: Vec<String>,
    state: PathBuf,
}

/// `args` (expanded) with `here`'s servers, status addresses and state file, and the
/// listener on a free loopback port: the workers share this host, not one pod IP each.
fn localize(args: &[String], here: &Here) -> Vec<String> {
    let mut statuses = here.statuses.iter();
    let mut local = args.to_vec();
    for i in 1..local.len() {
        let value = &local[i];
        local[i] = match local[i - 1].as_str() {
            "--source" => rehost(value, &here.source),
            "--target" => rehost(value, &here.target),
            "--status" => statuses.next().expect("an address per --status").clone(),
            "--metrics-addr" => "127.0.0.1:0".to_string(),
            "--state" => here.state.display().to_string(),
            _ => continue,
        };
    }
    local
}

/// The variables of a Job's container in its pod: each from its Secret key's value, and
/// for a worker the completion index the Job controller sets.
fn pod_env(deploy: &Deploy, job: &Value, index: Option<i64>) -> BTreeMap<String, String> {
    let secret = deploy.secret();
    let mut env: BTreeMap<String, String> = secret_variables(container(job))
        .into_iter()
        .map(|(variable, key)| (variable, secret[&key].clone()))
        .collect();
    if let Some(index) = index {
        env.insert(INDEX_VARIABLE.to_string(), index.to_string());
    }
    env
}

/// A worker's command line as its pod runs it, expanded.
fn expanded_args(job: &Value, env: &BTreeMap<String, String>) -> Vec<String> {
    args(container(job))
        .iter()
        .map(|arg| expand(arg, env))
        .collect()
}

/// Where a worker's `--state` lands under `claim` (the shared claim's root): in the folder
/// its `subPathExpr` names.
fn state_on_claim(job: &Value, env: &BTreeMap<String, String>, claim: &Path) -> PathBuf {
    let worker = container(job);
    let mount = &worker["volumeMounts"][0];
    let folder = expand(mount["subPathExpr"].as_str().unwrap(), env);
    let state = values_of(&args(worker), "--state")[0].to_string();
    let inside = state
        .strip_prefix(mount["mountPath"].as_str().unwrap())
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let dir = claim.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(inside)
}

/// Runs ferry with a command line to its end, in exactly the environment `env`.
fn run_with_only(args: &[String], env: &BTreeMap<String, String>) -> Output {
    Command::new(FERRY)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

/// Parsed and refused only at connecting: exit 1 (a usage error is 2), and not for an
/// argument.
fn assert_accepted(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
    assert!(stderr.contains("Connection refused"), "{what}: {stderr}");
}

/// The `N` of every worker's `--shards K/N`.
fn worker_count(deploy: &Deploy) -> i64 {
    let args = args(container(deploy.workers()));
    let shards = values_of(&args, "--shards");
    assert_eq!(shards.len(), 1, "{args:?}");
    let (index, count) = shards[0].split_once('/').unwrap();
    assert_eq!(index, format!("$({INDEX_VARIABLE})"));
    count.parse().unwrap()
}

#[test]
fn every_manifest_passes_strict_validation_and_a_broken_one_does_not() {
    let files = yaml_files(&kubernetes_dir());
    assert!(files.len() >= 5, "{files:?}");
    let version = KUBERNETES.rsplit_once('.').unwrap().0;
    let output = validate(&files, KUBERNETES);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    // One line per resource; each file has at least one, none a warning.
    for file in &files {
        let name = file.display().to_string();
        assert!(
            report
                .lines()
                .any(|line| line.contains(&name) && line.contains("passed")),
            "{name}: {report}"
        );
    }
    let passed = report
        .lines()
        .filter(|line| line.contains("passed"))
        .count();
    assert_eq!(passed, Deploy::load().resources.len(), "{report}");
    assert!(
        report.lines().all(|line| line.starts_with("INFO ")
            && line.ends_with(&format!("against version {version}"))),
        "{report}"
    );
    // The newest the pinned validator knows: one minor release more is refused.
    let (major, minor) = version.split_once('.').unwrap();
    let next = format!("{major}.{}.0", minor.parse::<u32>().unwrap() + 1);
    let refused = validate(&files[..1], &next);
    assert!(
        !refused.status.success() && text(&refused).contains("does not support"),
        "{}",
        text(&refused)
    );

    // The negative controls: the workers' Job with a misspelled field, a string for a
    // number and a string for a boolean is each refused, naming what is wrong.
    let original = std::fs::read_to_string(kubernetes_dir().join("job-migrate.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (broken, complaint) in [
        (
            original.replacen("backoffLimitPerIndex:", "backofLimitPerIndex:", 1),
            "'backofLimitPerIndex' was unexpected",
        ),
        (
            original.replacen("completions: 3", "completions: \"3\"", 1),
            "spec.completions: '3' is not of type 'integer'",
        ),
        (
            original.replacen(
                "readOnlyRootFilesystem: true",
                "readOnlyRootFilesystem: yes please",
                1,
            ),
            "readOnlyRootFilesystem: 'yes please' is not of type 'boolean'",
        ),
    ] {
        assert_ne!(
            broken, original,
            "the manifest changed: fix this test's edits"
        );
        let path = dir.path().join("job-migrate.yaml");
        std::fs::write(&path, broken).unwrap();
        let output = validate(&[path], KUBERNETES);
        let report = text(&output);
        assert!(!output.status.success(), "{report}");
        assert!(report.contains(complaint), "{complaint}: {report}");
    }
}

#[test]
fn the_workers_and_the_cutover_run_command_lines_ferry_accepts_with_secrets_by_name_only() {
    let deploy = Deploy::load();
    let secret = deploy.secret();
    let count = worker_count(&deploy);
    let dir = tempfile::tempdir().unwrap();
    for (job, indexed) in [(deploy.workers(), true), (deploy.cutover(), false)] {
        let name = job["metadata"]["name"].as_str().unwrap();
        let container = container(job);
        let args = args(container);
        let variables = secret_variables(container);
        // Each variable's key is in the Secret, and each secret reaches ferry by name.
        for (variable, key) in &variables {
            assert!(
                secret.contains_key(key),
                "{name}: {variable} needs key {key}"
            );
        }
        for flag in [
            "--source-password-env",
            "--target-password-env",
            "--control-token-env",
        ] {
            let given = values_of(&args, flag);
            assert_eq!(given.len(), 1, "{name}: {flag} once: {args:?}");
            assert!(variables.contains_key(given[0]), "{name}: {flag} {given:?}");
        }
        for arg in &args {
            assert!(
                !arg.starts_with("--") || !arg.ends_with("password"),
                "{name}: {arg}"
            );
            for value in secret.values() {
                assert!(!arg.contains(value.as_str()), "{name}: a secret in {arg:?}");
            }
        }
        // In the pod's environment (the Secret's placeholders, the index if indexed),
        // against closed loopback ports: ferry fails at its first connection, after
        // parsing.
        let indexes: Vec<Option<i64>> = match indexed {
            true => (0..count).map(Some).collect(),
            false => vec![None],
        };
        for index in indexes {
            let env = pod_env(&deploy, job, index);
            let here = Here {
                source: closed_port(),
                target: closed_port(),
                statuses: (0..count).map(|_| closed_port()).collect(),
                state: dir.path().join("state.json"),
            };
            let local = localize(&expanded_args(job, &env), &here);
            let output = run_with_only(&local, &env);
            assert_accepted(&format!("{name} index {index:?}: {local:?}"), &output);
            // Nothing ferry printed holds a secret either.
            let printed = text(&output);
            for value in secret.values() {
                assert!(!printed.contains(value.as_str()), "{name}: {printed}");
            }
        }
    }
}

#[test]
fn the_worker_count_and_the_status_port_agree_across_the_manifests() {
    let deploy = Deploy::load();
    let count = worker_count(&deploy);
    let job = deploy.workers();
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], count);
    assert_eq!(job["spec"]["parallelism"], count);
    let worker = container(job);
    let worker_args = args(worker);
    let port = &worker["ports"][0];
    assert_eq!(port["name"], "status");
    let metrics_addr = values_of(&worker_args, "--metrics-addr");
    assert_eq!(metrics_addr, [format!("0.0.0.0:{}", port["containerPort"])]);
    assert_eq!(worker["readinessProbe"]["httpGet"]["path"], "/status");

    // One Service per index, selecting that index's pod of this Job.
    let services = deploy.all("Service");
    assert_eq!(services.len() as i64, count);
    let mut addresses = Vec::new();
    for index in 0..count {
        let service = deploy.get("Service", &format!("ferry-worker-{index}"));
        let selector = &service["spec"]["selector"];
        assert_eq!(
            selector["batch.kubernetes.io/job-name"],
            job["metadata"]["name"]
        );
        assert_eq!(
            selector["batch.kubernetes.io/job-completion-index"],
            index.to_string()
        );
        let ports = service["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0]["targetPort"], "status");
        addresses.push(format!("ferry-worker-{index}:{}", ports[0]["port"]));
    }
    // The cutover asks every worker, through its Service, about the servers they copy
    // (it refuses workers of other servers): the same hosts, another user.
    let cutover = args(container(deploy.cutover()));
    assert_eq!(values_of(&cutover, "--status"), addresses);
    for side in ["--source", "--target"] {
        let servers = |args: &[String]| -> Vec<String> {
            values_of(args, side).into_iter().map(host_port).collect()
        };
        assert_eq!(servers(&cutover), servers(&worker_args), "{side}");
    }
    assert_eq!(deploy.cutover()["spec"]["backoffLimit"], 0);
    // Voluntary evictions wait for all of them.
    let budget = deploy.get("PodDisruptionBudget", "ferry-migrate");
    assert_eq!(budget["spec"]["minAvailable"], count);
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/job-name"],
        job["metadata"]["name"]
    );

    // Each worker's state is on the shared claim, in its own folder.
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let mounts = worker["volumeMounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1);
    let mount = &mounts[0];
    assert_eq!(mount["subPathExpr"], format!("worker-$({INDEX_VARIABLE})"));
    let state = values_of(&worker_args, "--state");
    assert_eq!(state.len(), 1);
    let mount_path = mount["mountPath"].as_str().unwrap();
    assert!(state[0].starts_with(&format!("{mount_path}/")), "{state:?}");
    let volume = &pod["volumes"][0];
    assert_eq!(volume["name"], mount["name"]);
    let claim = deploy.get(
        "PersistentVolumeClaim",
        volume["persistentVolumeClaim"]["claimName"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteMany");
}

#[test]
fn both_jobs_run_the_documented_image_locked_down() {
    let deploy = Deploy::load();
    let image = format!("ferry:{}", env!("CARGO_PKG_VERSION"));
    let guide = std::fs::read_to_string(repo().join("docs/deploy.md")).unwrap();
    let containerfile =
        std::fs::read_to_string(repo().join("deploy/container/Containerfile")).unwrap();
    for text in [&guide, &containerfile] {
        assert!(
            text.contains(&format!(
                "docker build -f deploy/container/Containerfile -t {image} build/image"
            )),
            "the build command tags {image}"
        );
    }
    assert!(containerfile
        .lines()
        .any(|line| line == format!("FROM {BASE_IMAGE}")));
    assert!(containerfile
        .lines()
        .any(|line| line == format!("USER {NONROOT}:{NONROOT}")));
    assert!(containerfile
        .lines()
        .any(|line| line == r#"ENTRYPOINT ["/usr/local/bin/ferry"]"#));
    for job in [deploy.workers(), deploy.cutover()] {
        let pod = &job["spec"]["template"]["spec"];
        let container = container(job);
        assert_eq!(container["image"], image.as_str());
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], NONROOT);
        assert_eq!(pod["securityContext"]["runAsGroup"], NONROOT);
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert!(container["resources"]["requests"]["memory"].is_string());
        assert!(container["resources"]["limits"]["memory"].is_string());
    }
}

/// The libraries a binary loads and the newest glibc symbol version it needs, by readelf.
fn dynamic_needs(binary: &str) -> (Vec<String>, (u32, u32)) {
    let dynamic = Command::new("readelf")
        .args(["--dynamic", "--wide", binary])
        .output()
        .expect("run readelf (binutils)");
    let libraries = String::from_utf8_lossy(&dynamic.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .map(|line| {
            let start = line.find('[').unwrap() + 1;
            line[start..line.rfind(']').unwrap()].to_string()
        })
        .collect();
    let symbols = Command::new("readelf")
        .args(["--dyn-syms", "--wide", binary])
        .output()
        .expect("run readelf (binutils)");
    let newest = String::from_utf8_lossy(&symbols.stdout)
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("glibc symbol versions");
    (libraries, newest)
}

#[test]
fn the_binary_needs_only_what_the_image_base_provides() {
    // This run's build of ferry; the release build links the same libraries.
    let (libraries, newest_glibc) = dynamic_needs(FERRY);
    assert!(
        libraries.contains(&"libc.so.6".to_string()),
        "{libraries:?}"
    );
    for library in &libraries {
        // The dynamic loader's name is the architecture's (ld-linux-x86-64.so.2, …).
        assert!(
            BASE_LIBRARIES.contains(&library.as_str()) || library.starts_with("ld-linux-"),
            "{library} is not in {BASE_IMAGE}"
        );
    }
    assert!(
        newest_glibc <= BASE_GLIBC,
        "ferry needs glibc {newest_glibc:?}, {BASE_IMAGE} has {BASE_GLIBC:?}: build on \
         Debian 12 or change the base"
    );
}

/// Creates `user` with `password` and `rules` on each node.
fn add_user(nodes: &[Server], user: &str, password: &str, rules: &str) {
    for node in nodes {
        let mut client = node.client();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg("on")
            .arg(format!(">{password}"))
            .arg(rules.split(' ').collect::<Vec<_>>())
            .query::<()>(&mut client)
            .unwrap();
    }
}

/// Writes `count` string keys named `prefix:N` into the cluster (each on the primary
/// serving its slot).
fn write_keys(cluster: &Cluster, prefix: &str, count: usize) {
    let filler = Server::start(cluster.kind()).unwrap();
    let mut client = filler.client();
    let mut pipe = redis::pipe();
    for i in 0..count {
        pipe.cmd("SET").arg(format!("{prefix}:{i}")).arg(i).ignore();
    }
    pipe.query::<()>(&mut client).unwrap();
    cluster.copy_from(&filler).unwrap();
}

fn address(server: &Server) -> String {
    format!("127.0.0.1:{}", server.port())
}

/// A worker started with its pod's command line, from the subcommand on.
fn start_worker(local: &[String], env: &BTreeMap<String, String>) -> Ferry {
    let rest: Vec<&str> = local[1..].iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Ferry::start_command_with_env(&local[0], &rest, &env)
}

#[test]
fn the_manifests_command_lines_migrate_a_cluster_resume_a_replaced_worker_and_cut_over() {
    let deploy = Deploy::load();
    let count = worker_count(&deploy) as usize;
    let secret = deploy.secret();
    // A source of one primary per worker, a target of two, each side with the users the
    // URLs name, their rules as docs/deploy.md gives them, and the Secret's passwords.
    let source = Cluster::start(ServerKind::Valkey81, count).unwrap();
    let target = Cluster::start(ServerKind::Valkey81, 2).unwrap();
    let users = [
        (
            &source,
            "ferry-source",
            "source-password",
            SOURCE_USER_RULES,
        ),
        (
            &target,
            "ferry-target",
            "target-password",
            TARGET_USER_RULES,
        ),
        (
            &source,
            "ferry-ops",
            "cutover-source-password",
            OPERATIONS_USER_RULES,
        ),
        (
            &target,
            "ferry-ops",
            "cutover-target-password",
            OPERATIONS_USER_RULES,
        ),
    ];
    for (cluster, user, key, rules) in users {
        add_user(cluster.nodes(), user, &secret[key], rules);
    }
    write_keys(&source, "before", 3000);

    let claim = tempfile::tempdir().unwrap();
    let job = deploy.workers();
    let pod = |index: usize| {
        let env = pod_env(&deploy, job, Some(index as i64));
        let here = Here {
            source: address(&source.nodes()[0]),
            target: address(&target.nodes()[0]),
            statuses: Vec::new(),
            state: state_on_claim(job, &env, claim.path()),
        };
        (localize(&expanded_args(job, &env), &here), env)
    };
    let mut workers: Vec<Ferry> = (0..count)
        .map(|index| {
            let (local, env) = pod(index);
            start_worker(&local, &env)
        })
        .collect();
    for ferry in &mut workers {
        ferry.wait_all_shards_in_sync();
    }

    // Worker 1's pod is lost (SIGKILL, as with its node) while the source takes writes;
    // its replacement, the same command line on the same claim folder, resumes.
    workers[1].kill();
    write_keys(&source, "during", 1000);
    let (local, env) = pod(1);
    workers[1] = start_worker(&local, &env);
    workers[1].wait_all_shards_in_sync();
    let resumed = workers[1].output();
    assert!(
        resumed.contains("partial resync accepted (+CONTINUE)") && !resumed.contains("full sync"),
        "{resumed}"
    );

    // The one cutover, each --status the worker of that index.
    let statuses: Vec<String> = workers
        .iter_mut()
        .map(|ferry| ferry.status_address(Duration::from_secs(10)))
        .collect();
    let env = pod_env(&deploy, deploy.cutover(), None);
    let here = Here {
        source: address(&source.nodes()[0]),
        target: address(&target.nodes()[0]),
        statuses,
        state: PathBuf::new(),
    };
    let local = localize(&expanded_args(deploy.cutover(), &env), &here);
    let output = run_with_only(&local, &env);
    assert!(output.status.success(), "{local:?}: {}", text(&output));
    for ferry in &mut workers {
        let status = ferry.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{}", ferry.output());
    }
    let expected = source.snapshot().unwrap();
    let differences = expected.diff(&target.snapshot().unwrap(), &DiffOptions::new());
    assert!(
        differences.is_empty(),
        "{} differences, first: {}",
        differences.len(),
        differences[0]
    );
    assert_eq!(expected.key_count(), 4000);
}
