//! Unified diffs of byte lines (what `diff -u` prints), so a change can be
//! reviewed before it is made and compared with a backup afterwards.
//! Lines are compared as bytes; files that are not UTF-8 diff fine.

/// Above this many cells the middle of two files is shown as replaced
/// wholesale instead of aligned (bounded time and memory on huge inputs).
const MAX_CELLS: usize = 4_000_000;

/// Lines of context around each change.
const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Del(usize),
    Ins(usize),
}

fn lines(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let n = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (l, t) = rest.split_at(n);
        out.push(l);
        rest = t;
    }
    out
}

fn script(a: &[&[u8]], b: &[&[u8]]) -> Vec<Op> {
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a.get(pre) == b.get(pre) {
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre
        && suf < b.len() - pre
        && a.get(a.len() - 1 - suf) == b.get(b.len() - 1 - suf)
    {
        suf += 1;
    }
    let am = a.get(pre..a.len() - suf).unwrap_or(&[]);
    let bm = b.get(pre..b.len() - suf).unwrap_or(&[]);
    let mut ops: Vec<Op> = (0..pre).map(|i| Op::Same(i, i)).collect();
    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) > MAX_CELLS || n == 0 || m == 0 {
        ops.extend((0..n).map(|i| Op::Del(pre + i)));
        ops.extend((0..m).map(|j| Op::Ins(pre + j)));
    } else {
        // lcs[i][j]: LCS length of am[i..] and bm[j..], row-major.
        let w = m + 1;
        let mut lcs = vec![0u32; (n + 1) * w];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                let v = if am.get(i) == bm.get(j) {
                    lcs.get((i + 1) * w + j + 1).copied().unwrap_or(0) + 1
                } else {
                    let down = lcs.get((i + 1) * w + j).copied().unwrap_or(0);
                    let right = lcs.get(i * w + j + 1).copied().unwrap_or(0);
                    down.max(right)
                };
                if let Some(c) = lcs.get_mut(i * w + j) {
                    *c = v;
                }
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am.get(i) == bm.get(j) {
                ops.push(Op::Same(pre + i, pre + j));
                i += 1;
                j += 1;
            } else if i < n
                && (j == m
                    || lcs.get((i + 1) * w + j).copied().unwrap_or(0)
                        >= lcs.get(i * w + j + 1).copied().unwrap_or(0))
            {
                // Deletions before insertions, as diff(1) prints them.
                ops.push(Op::Del(pre + i));
                i += 1;
            } else {
                ops.push(Op::Ins(pre + j));
                j += 1;
            }
        }
    }
    ops.extend((0..suf).map(|k| Op::Same(a.len() - suf + k, b.len() - suf + k)));
    ops
}

fn range(start: usize, count: usize) -> String {
    match count {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{count}", start + 1),
    }
}

fn push_line(out: &mut Vec<u8>, mark: u8, line: &[u8]) {
    out.push(mark);
    out.extend_from_slice(line);
    if !line.ends_with(b"\n") {
        out.extend_from_slice(b"\n\\ No newline at end of file\n");
    }
}

/// The unified diff from `old` to `new`, labelled; empty if they are equal.
pub(crate) fn unified(old: &[u8], new: &[u8], old_label: &str, new_label: &str) -> Vec<u8> {
    if old == new {
        return Vec::new();
    }
    let a = lines(old);
    let b = lines(new);
    let ops = script(&a, &b);
    let mut out = format!("--- {old_label}\n+++ {new_label}\n").into_bytes();
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(..)))
        .map(|(k, _)| k)
        .collect();
    let mut k = 0;
    while k < changed.len() {
        let first = changed.get(k).copied().unwrap_or(0);
        let mut last = first;
        // Extend the hunk while the next change is within 2*CONTEXT lines.
        while let Some(&next) = changed.get(k + 1) {
            if next - last <= 2 * CONTEXT + 1 {
                last = next;
                k += 1;
            } else {
                break;
            }
        }
        k += 1;
        let lo = first.saturating_sub(CONTEXT);
        let hi = (last + CONTEXT + 1).min(ops.len());
        let hunk = ops.get(lo..hi).unwrap_or(&[]);
        // Positions before the hunk: old and new lines consumed by ops[..lo].
        let (mut a0, mut b0) = (0, 0);
        for o in ops.get(..lo).unwrap_or(&[]) {
            match o {
                Op::Same(..) => {
                    a0 += 1;
                    b0 += 1;
                }
                Op::Del(_) => a0 += 1,
                Op::Ins(_) => b0 += 1,
            }
        }
        let ac = hunk.iter().filter(|o| !matches!(o, Op::Ins(_))).count();
        let bc = hunk.iter().filter(|o| !matches!(o, Op::Del(_))).count();
        out.extend_from_slice(format!("@@ -{} +{} @@\n", range(a0, ac), range(b0, bc)).as_bytes());
        for o in hunk {
            match *o {
                Op::Same(i, _) => push_line(&mut out, b' ', a.get(i).copied().unwrap_or(&[])),
                Op::Del(i) => push_line(&mut out, b'-', a.get(i).copied().unwrap_or(&[])),
                Op::Ins(j) => push_line(&mut out, b'+', b.get(j).copied().unwrap_or(&[])),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_change() {
        let old = b"a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let new = b"a\nb\nc\nd\nE\nf\ng\nh\ni\nj";
        let d = String::from_utf8(unified(old, new, "old", "new")).unwrap();
        assert_eq!(
            d,
            "--- old\n+++ new\n@@ -2,8 +2,9 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n i\n+j\n\\ No newline at end of file\n"
        );
        assert!(unified(old, old, "a", "b").is_empty());
        let d = String::from_utf8(unified(b"", b"x\n", "a", "b")).unwrap();
        assert_eq!(d, "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n");
    }

    #[test]
    fn separate_hunks() {
        let old: Vec<u8> = (0..30)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let new: String = (0..30)
            .map(|i| match i {
                2 => "two\n".to_string(),
                25 => "x\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        let d = String::from_utf8(unified(&old, new.as_bytes(), "a", "b")).unwrap();
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert!(d.contains("@@ -23,7 +23,7 @@"), "{d}");
    }
}
