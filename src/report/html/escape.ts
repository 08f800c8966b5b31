/** Text into HTML and data into a <script> element, so that user text (generations, labels) stays text. */

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** For element content and quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * JSON for `<script type="application/json">`: `<`, `>` and `&` as \u escapes, so no `</script>` or
 * `<!--` in the data can end or change the element; U+2028/U+2029 too, for older script parsers.
 * JSON.parse of the element's text gives the value back unchanged.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Script text to inline as it is: refused when it holds what would end the element early or start an
 * HTML comment inside it (the HTML parser sees `</script` before any JavaScript runs).
 */
export function checkInlineScript(name: string, text: string): string {
  if (/<\/script|<!--/i.test(text)) throw new Error(`${name} contains '</script' or '<!--' and cannot be inlined into the report`);
  return text;
}
