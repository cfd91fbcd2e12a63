//! Lists: quicklists of listpack (RDB 10+) or ziplist (RDB 9) nodes, and the plain form.

use crate::length::{write_len, write_string};
use crate::target::{Format, LIST_NODE_MAX_BYTES};

use super::packer::Packer;

/// Quicklist 2 node containers.
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Per-entry overhead the server adds to an element's size when deciding whether it still
/// fits a node (`SIZE_ESTIMATE_OVERHEAD`).
const ENTRY_OVERHEAD: usize = 8;

enum Node<'a> {
    Packed(Vec<u8>),
    Plain(&'a [u8]),
}

fn write_node(format: &Format, node: &Node<'_>, out: &mut Vec<u8>, compress: bool) {
    let quicklist_2 = format.has_listpacks();
    match node {
        Node::Packed(bytes) => {
            if quicklist_2 {
                write_len(out, CONTAINER_PACKED);
            }
            write_string(out, bytes, compress);
        }
        Node::Plain(element) => {
            write_len(out, CONTAINER_PLAIN);
            write_string(out, element, compress);
        }
    }
}

fn is_plain(format: &Format, element: &[u8]) -> bool {
    format
        .list_plain_node_from()
        .is_some_and(|from| element.len() >= from)
}

/// Writes a whole list as a quicklist (2) with nodes filled the way the server
/// fills them under the default `list-max-listpack-size -2`: up to 8 KiB each, elements too
/// big for that in nodes of their own.
pub(super) fn write_quicklist<'a>(
    format: &Format,
    elements: impl Iterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
    compress: bool,
) {
    let mut nodes: Vec<Node<'a>> = Vec::new();
    let mut current = Packer::new(format);
    for element in elements {
        if is_plain(format, element) {
            if current.len() > 0 {
                nodes.push(Node::Packed(
                    std::mem::replace(&mut current, Packer::new(format)).finish(),
                ));
            }
            nodes.push(Node::Plain(element));
            continue;
        }
        if current.len() > 0
            && current.byte_len() + element.len() + ENTRY_OVERHEAD > LIST_NODE_MAX_BYTES
        {
            nodes.push(Node::Packed(
                std::mem::replace(&mut current, Packer::new(format)).finish(),
            ));
        }
        current.push(element);
    }
    if current.len() > 0 {
        nodes.push(Node::Packed(current.finish()));
    }
    write_len(out, nodes.len() as u64);
    for node in &nodes {
        write_node(format, node, out, compress);
    }
}

/// Writes one quicklist node holding `elements` (one source node when a large list is
/// streamed node by node).
pub(super) fn write_quicklist_node<'a>(
    format: &Format,
    elements: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
    compress: bool,
) {
    let mut elements = elements.into_iter();
    let first = elements.next();
    let second = elements.next();
    let node = match (first, second) {
        (Some(single), None) if is_plain(format, single) => Node::Plain(single),
        _ => {
            let mut packer = Packer::new(format);
            for element in first.into_iter().chain(second).chain(elements) {
                packer.push(element);
            }
            Node::Packed(packer.finish())
        }
    };
    write_node(format, &node, out, compress);
}
