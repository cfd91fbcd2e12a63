//! Lists the keys of an RDB file, one a line: database, type and name.
//!
//! ```text
//! cargo run -p ferry-codec --example inspect -- dump.rdb
//! ```

use std::error::Error;
use std::fs::File;

use ferry_codec::{Decoder, Item};

fn main() -> Result<(), Box<dyn Error>> {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: inspect FILE.rdb");
        std::process::exit(2);
    };
    let mut decoder = Decoder::new(File::open(path)?);
    while let Some(item) = decoder.next_item()? {
        match item {
            Item::Header(version) => println!("# {version}"),
            Item::KeyStart(header) => {
                let name = header.key.escape_ascii();
                println!("{}\t{}\t{name}", header.db, header.kind.type_name());
                // Only the names are wanted: skip the value rather than build it.
                decoder.skip_value()?;
            }
            _ => {}
        }
    }
    Ok(())
}
