//! Sets: intset, listpack (RDB 11+) or the plain form.

use crate::intset;
use crate::length::write_string;
use crate::listpack::ListpackBuilder;

/// Writes an intset of `members`, which the caller found to be canonical integers and
/// free of duplicates.
pub(super) fn write_intset(members: &[i64], out: &mut Vec<u8>, compress: bool) {
    write_string(out, &intset::build(members), compress);
}

pub(super) fn write_listpack<'a>(
    members: impl Iterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
    compress: bool,
) {
    let mut packer = ListpackBuilder::new();
    for member in members {
        packer.push(member);
    }
    write_string(out, &packer.finish(), compress);
}
