//! Which servers we test against and where Debian carries each of them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Redis,
    Valkey,
}

impl Product {
    pub fn program(self) -> &'static str {
        match self {
            Product::Redis => "redis",
            Product::Valkey => "valkey",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// "redis-8.0": the name tests use.
    pub name: &'static str,
    pub product: Product,
    /// The upstream release series; the installed version must start with `"<series>."`.
    pub series: &'static str,
    /// The suite whose server package we take.
    pub suite: &'static str,
    /// The suite whose runtime libraries (glibc included) the server was built against.
    pub lib_suite: &'static str,
}

pub const SPECS: [Spec; 6] = [
    Spec::new("redis-6.0", Product::Redis, "6.0", "bullseye", "bullseye"),
    Spec::new("redis-7.0", Product::Redis, "7.0", "bookworm", "bookworm"),
    Spec::new("redis-8.0", Product::Redis, "8.0", "trixie", "trixie"),
    Spec::new(
        "valkey-8.0",
        Product::Valkey,
        "8.0",
        "bookworm-backports",
        "bookworm",
    ),
    Spec::new("valkey-8.1", Product::Valkey, "8.1", "trixie", "trixie"),
    Spec::new("valkey-9.1", Product::Valkey, "9.1", "forky", "forky"),
];

impl Spec {
    const fn new(
        name: &'static str,
        product: Product,
        series: &'static str,
        suite: &'static str,
        lib_suite: &'static str,
    ) -> Spec {
        Spec {
            name,
            product,
            series,
            suite,
            lib_suite,
        }
    }

    /// The package holding only the `*-server` symlink (and service files).
    pub fn server_package(&self) -> String {
        format!("{}-server", self.product.program())
    }

    /// The package holding the actual binary (server, cli, benchmark, check tools).
    pub fn tools_package(&self) -> String {
        format!("{}-tools", self.product.program())
    }

    /// A program's path inside the server's folder. The server must be started through its
    /// `*-server` name: the binary picks its mode (server or rdb checker) from `argv[0]`.
    pub fn program_path(&self, tool: &str) -> String {
        format!("usr/bin/{}-{tool}", self.product.program())
    }
}

/// Every suite our sources list needs.
pub fn suites() -> Vec<&'static str> {
    let mut suites: Vec<&'static str> = Vec::new();
    for spec in &SPECS {
        for suite in [spec.suite, spec.lib_suite] {
            if !suites.contains(&suite) {
                suites.push(suite);
            }
        }
    }
    suites
}
