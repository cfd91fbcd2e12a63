//! RESP encoding: commands (arrays of bulk strings) and any [`Frame`].

use bytes::{BufMut, Bytes, BytesMut};

use super::Frame;

/// Appends `*<n>\r\n` then `$<len>\r\n<arg>\r\n` for each argument.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    put_header(out, b'*', args.len() as i64);
    for arg in args {
        put_blob(out, b'$', arg.as_ref());
    }
}

/// One bulk string, as an argument of a command whose array header is written apart
/// (see [`encode_array_header`]).
pub fn encode_bulk(arg: &[u8], out: &mut BytesMut) {
    put_blob(out, b'$', arg);
}

/// The header of a command of `len` arguments, which [`encode_bulk`] then appends.
pub fn encode_array_header(len: usize, out: &mut BytesMut) {
    put_header(out, b'*', len as i64);
}

/// One command as bytes, ready to write.
pub fn command<A: AsRef<[u8]>>(args: &[A]) -> Bytes {
    let payload: usize = args.iter().map(|a| a.as_ref().len() + 16).sum();
    let mut out = BytesMut::with_capacity(payload + 16);
    encode_command(args, &mut out);
    out.freeze()
}

/// Appends the wire form of `frame`. Decoding the result gives back an equal frame.
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::Simple(s) => put_line(out, b'+', s),
        Frame::Error(s) => put_line(out, b'-', s),
        Frame::Integer(n) => put_header(out, b':', *n),
        Frame::Bulk(b) => put_blob(out, b'$', b),
        Frame::NullBulk => out.put_slice(b"$-1\r\n"),
        Frame::NullArray => out.put_slice(b"*-1\r\n"),
        Frame::Null => out.put_slice(b"_\r\n"),
        Frame::Array(items) => put_items(out, b'*', items),
        Frame::Boolean(b) => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Double(d) => put_line(out, b',', d),
        Frame::BigNumber(n) => put_line(out, b'(', n),
        Frame::BulkError(e) => put_blob(out, b'!', e),
        Frame::Verbatim { format, text } => {
            put_header(out, b'=', (format.len() + 1 + text.len()) as i64);
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Frame::Map(pairs) => put_pairs(out, b'%', pairs),
        Frame::Set(items) => put_items(out, b'~', items),
        Frame::Attribute(pairs) => put_pairs(out, b'|', pairs),
        Frame::Push(items) => put_items(out, b'>', items),
        Frame::Inline(args) => put_inline(out, args),
    }
}

fn put_items(out: &mut BytesMut, marker: u8, items: &[Frame]) {
    put_header(out, marker, items.len() as i64);
    for item in items {
        encode_frame(item, out);
    }
}

fn put_pairs(out: &mut BytesMut, marker: u8, pairs: &[(Frame, Frame)]) {
    put_header(out, marker, pairs.len() as i64);
    for (key, value) in pairs {
        encode_frame(key, out);
        encode_frame(value, out);
    }
}

fn put_line(out: &mut BytesMut, marker: u8, text: &[u8]) {
    out.put_u8(marker);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn put_blob(out: &mut BytesMut, marker: u8, body: &[u8]) {
    put_header(out, marker, body.len() as i64);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, marker: u8, number: i64) {
    out.put_u8(marker);
    put_decimal(out, number);
    out.put_slice(b"\r\n");
}

/// Writes a decimal number without going through a heap-allocated string.
fn put_decimal(out: &mut BytesMut, number: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if number < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[at..]);
}

/// Inline form: each argument double-quoted with every byte that is not plain printable
/// ASCII escaped as `\xHH`, so any argument survives the round trip.
fn put_inline(out: &mut BytesMut, args: &[Bytes]) {
    for (index, arg) in args.iter().enumerate() {
        if index > 0 {
            out.put_u8(b' ');
        }
        out.put_u8(b'"');
        for &byte in arg.iter() {
            if byte.is_ascii_graphic() && byte != b'"' && byte != b'\\' || byte == b' ' {
                out.put_u8(byte);
            } else {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 15)],
                ]);
            }
        }
        out.put_u8(b'"');
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_an_array_of_bulk_strings() {
        assert_eq!(
            &command(&["REPLCONF", "ACK", "123"])[..],
            b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$3\r\n123\r\n"
        );
        assert_eq!(&command::<&str>(&[])[..], b"*0\r\n");
    }

    #[test]
    fn decimals_cover_the_extremes() {
        for n in [0, 7, -7, 10, i64::MAX, i64::MIN] {
            let mut out = BytesMut::new();
            put_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
