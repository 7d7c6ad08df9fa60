//! `kbpf shell`: the same commands, one per line from stdin, against one [`State`]: an object
//! loaded with `prog load` stays loaded, so later `prog run` lines run its programs with the
//! maps and global data earlier runs left (as a libbpf program that loads once and test-runs
//! many times). Blank lines and `#` comments are skipped; a failed line prints its error and
//! the shell goes on. The exit status is 0 when every line succeeded, else the last failure's.

use super::{State, run_args};
use std::io::{BufRead, Write};

/// Splits a line into words: whitespace-separated, with `'…'` and `"…"` quoting.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Runs the shell over `input`.
pub fn shell(
    state: &mut State,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut status = 0;
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(err, "kbpf shell: reading stdin: {e}");
                return 2;
            }
        }
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let argv = match words(text) {
            Ok(w) => w,
            Err(e) => {
                let _ = writeln!(err, "kbpf shell: {e}: {text}");
                status = 2;
                continue;
            }
        };
        // Commands that read stdin (tcx script, the plugin) get nothing: stdin is the shell's.
        match run_args(&argv, state, &mut std::io::empty(), out, err) {
            0 => {}
            s => status = s,
        }
        let _ = out.flush();
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_and_quotes() {
        assert_eq!(words("a  b 'c d' \"e\"").unwrap(), ["a", "b", "c d", "e"]);
        assert_eq!(words("map update m '06 00' u32:1").unwrap().len(), 5);
        assert!(words("'open").is_err());
        assert!(words("").unwrap().is_empty());
    }
}
