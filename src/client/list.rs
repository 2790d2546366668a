//! Listing a remote directory (`list`) for `remo ls` and any other caller:
//! the entries as they arrive, each line checked before it is handed on, so
//! a server that sends something else is a clear protocol error.

use crate::client::conn::{sanitize, ResponseItem, ResponseStream};
use crate::client::ctx::{Active, Ctx};
use crate::client::error::ClientError;
use crate::ops::list::{ListDesc, ListEntry, ListResult};
use crate::ops::result_of;
use crate::proto::record::MAX_RESPONSE_DATA;

/// The longest line taken from a server: one record's data, since remod
/// never splits a line across records. A longer one is refused, so a
/// hostile server cannot grow the buffer without bound.
const MAX_LINE: usize = MAX_RESPONSE_DATA;

/// Lists the remote directory `path`: `each` gets every entry with its line
/// as received (without the newline), in the server's order (by name);
/// the result says how many there were and whether the server cut the
/// listing short.
pub(crate) async fn list(
    ctx: &Ctx,
    active: &mut Active,
    path: &str,
    each: impl FnMut(&ListEntry, &[u8]) -> Result<(), ClientError>,
) -> Result<ListResult, ClientError> {
    let desc = ListDesc {
        path: path.to_string(),
    };
    let resp = ctx.request(active, &desc, None).await?;
    read(resp, each).await
}

/// Reads a `list` response.
async fn read(
    mut resp: ResponseStream,
    mut each: impl FnMut(&ListEntry, &[u8]) -> Result<(), ClientError>,
) -> Result<ListResult, ClientError> {
    let mut lines = Lines::default();
    while let Some(item) = resp.next().await? {
        match item {
            ResponseItem::Stdout(b) => lines.feed(&b, &mut each)?,
            // `list` sends none; nothing to show from it.
            ResponseItem::Stderr(_) => {}
            ResponseItem::Done(Err(e)) => return Err(ClientError::Op(e)),
            ResponseItem::Done(Ok(m)) => {
                let r = result_of::<ListDesc>(m)
                    .map_err(|e| bad(format!("result: {}", sanitize(&e.to_string()))))?;
                return lines.finish(r);
            }
        }
    }
    Err(ClientError::Truncated)
}

fn bad(what: String) -> ClientError {
    ClientError::Protocol(format!("list: {what}"))
}

/// Splits the data into lines across records and checks each.
#[derive(Default)]
struct Lines {
    /// The start of a line whose end has not come yet.
    pending: Vec<u8>,
    /// Entries seen.
    seen: u64,
}

impl Lines {
    fn feed(
        &mut self,
        mut data: &[u8],
        each: &mut impl FnMut(&ListEntry, &[u8]) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        while let Some(i) = memchr::memchr(b'\n', data) {
            let (head, rest) = data.split_at(i);
            data = rest.get(1..).unwrap_or_default();
            let line = if self.pending.is_empty() {
                head
            } else {
                self.pending.extend_from_slice(head);
                self.pending.as_slice()
            };
            if line.len() > MAX_LINE {
                return Err(bad(format!("line {} is too long", self.seen + 1)));
            }
            let entry = parse(line, self.seen + 1)?;
            self.seen += 1;
            each(&entry, line)?;
            self.pending.clear();
        }
        if self.pending.len() + data.len() > MAX_LINE {
            return Err(bad(format!("line {} is too long", self.seen + 1)));
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// The result, once the data has ended whole and as long as it says.
    fn finish(self, r: ListResult) -> Result<ListResult, ClientError> {
        if !self.pending.is_empty() {
            return Err(bad("the data ends inside a line".into()));
        }
        if r.count != self.seen {
            return Err(bad(format!(
                "the result counts {} entries but {} came",
                r.count, self.seen
            )));
        }
        Ok(r)
    }
}

/// One line as an entry whose name is a name: not empty, not `.` or `..`,
/// without `/` or NUL.
fn parse(line: &[u8], n: u64) -> Result<ListEntry, ClientError> {
    let e: ListEntry = serde_json::from_slice(line).map_err(|e| {
        bad(format!(
            "line {n} is not an entry: {}",
            sanitize(&e.to_string())
        ))
    })?;
    let name = e
        .name_bytes()
        .map_err(|_| bad(format!("line {n}: name_b64 is not b64url")))?;
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(bad(format!(
            "line {n}: {:?} is not a file name",
            sanitize(&e.name)
        )));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], count: u64) -> Result<Vec<String>, ClientError> {
        let mut lines = Lines::default();
        let mut names = Vec::new();
        for c in chunks {
            lines.feed(c, &mut |e: &ListEntry, raw: &[u8]| {
                assert!(!raw.ends_with(b"\n"));
                names.push(e.name.clone());
                Ok(())
            })?;
        }
        lines.finish(ListResult {
            count,
            truncated: false,
        })?;
        Ok(names)
    }

    const A: &[u8] = br#"{"name":"a","type":"file","size":1,"mode":420,"mtime":0}"#;

    #[test]
    fn lines_may_span_records() {
        let b = br#"{"name":"b","type":"dir","size":0,"mode":493,"mtime":1}"#;
        let two = [A, b"\n", b, b"\n"].concat();
        let (x, y) = two.split_at(70);
        assert_eq!(run(&[x, y], 2).unwrap(), ["a", "b"]);
        assert_eq!(run(&[&two], 2).unwrap(), ["a", "b"]);
        assert_eq!(run(&[], 0).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn what_a_bad_server_sends_is_an_error() {
        let msg = |r: Result<Vec<String>, ClientError>| r.unwrap_err().to_string();
        assert!(msg(run(&[b"not json\n"], 1)).contains("line 1 is not an entry"));
        assert!(msg(run(&[b"{\"name\":\"a\"}\n"], 1)).contains("not an entry"));
        assert!(msg(run(&[A], 1)).contains("ends inside a line"));
        let mut one = A.to_vec();
        one.push(b'\n');
        assert!(msg(run(&[&one], 2)).contains("counts 2 entries but 1 came"));
        for name in ["", ".", "..", "a/b", "a\\u0000"] {
            let l = format!(r#"{{"name":"{name}","type":"dir","size":0,"mode":0,"mtime":0}}"#);
            let r = run(&[l.as_bytes(), b"\n"], 1);
            assert!(msg(r).contains("is not a file name"), "{name}");
        }
        let l = br#"{"name":"x","name_b64":"!!","type":"dir","size":0,"mode":0,"mtime":0}"#;
        assert!(msg(run(&[l, b"\n"], 1)).contains("name_b64"));
        let long = vec![b' '; MAX_LINE + 1];
        assert!(msg(run(&[&long], 1)).contains("too long"));
        let (x, y) = long.split_at(MAX_LINE / 2);
        assert!(msg(run(&[x, y], 1)).contains("too long"));
    }
}
