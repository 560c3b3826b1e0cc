//! Self-contained HTML pages made from Markdown (a retrospective, a
//! validation report): no scripts, no outside assets, and any raw HTML in
//! the Markdown (which may carry people's or models' words) shown as text,
//! never run.

use pulldown_cmark::{Event, Options, Parser, html};

pub fn from_markdown(title: &str, markdown: &str) -> String {
    let parser =
        Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS).map(|event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            other => other,
        });
    let mut body = String::new();
    html::push_html(&mut body, parser);
    let mut escaped_title = String::new();
    escape(title, &mut escaped_title);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escaped_title}</title>\n<style>\n\
         body{{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1d2330}}\n\
         table{{border-collapse:collapse;margin:.5rem 0}}td,th{{border:1px solid #c9ced8;padding:.25rem .5rem;text-align:left;vertical-align:top}}\n\
         th{{background:#eef1f6}}code,pre{{background:#f5f6f8;font-size:13px}}pre{{padding:.5rem;overflow:auto}}\n\
         </style></head><body>\n{body}</body></html>\n"
    )
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}
