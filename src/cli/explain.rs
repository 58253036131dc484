//! `mtlscope explain TEXT…`: the catalogue entries a vendor's words map to, why, and the
//! mtlscope command that would tell them apart (see `mtlscope::vendor_words`).

use crate::error::CommandError;
use crate::vendor_words;
use clap::Args;
use std::io::Read;

/// `explain`'s exit code when no entry of the table is in the text (the closest are printed).
pub const NO_MATCH: u8 = 3;

/// `mtlscope explain …`
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct ExplainArgs {
    /// The vendor's words: a reason code (`Failed:ClientCertUntrusted`, `403.7`, `-117`), an
    /// error message, or a whole log line (several arguments are joined with spaces; `-` reads
    /// the text from standard input).
    #[arg(required = true, value_name = "TEXT")]
    pub text: Vec<String>,
    /// Print the result as JSON (its shape is in docs/findings.md).
    #[arg(long)]
    pub json: bool,
}

/// Explain the text; exit code 0 when something matched, 3 when not (with the closest entries).
pub fn run(args: ExplainArgs) -> Result<(), CommandError> {
    let text = if args.text.len() == 1 && args.text[0] == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            CommandError::usage(format!("explain: cannot read TEXT from stdin: {e}"))
        })?;
        s
    } else {
        args.text.join(" ")
    };
    if text.trim().is_empty() {
        return Err(CommandError::usage(
            "explain: TEXT is empty (give a vendor's error words, e.g. mtlscope explain Failed:ClientCertUntrusted)",
        ));
    }
    let explanation = vendor_words::explain(&text);
    if args.json {
        let json = serde_json::to_string_pretty(&explanation)
            .map_err(|e| CommandError::runtime(format!("explain: cannot write JSON: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", vendor_words::text(&explanation));
    }
    if explanation.matched {
        Ok(())
    } else {
        Err(CommandError {
            code: NO_MATCH,
            message: "explain: no exact match for these words; the closest entries are listed"
                .into(),
        })
    }
}
