/**
 * xterm.js under the console's Content-Security-Policy (`style-src 'self'`,
 * no `'unsafe-inline'`). xterm's DOM renderer puts its theme, cursor and
 * geometry rules into `<style>` elements it creates, and 24-bit colours
 * into `style` attributes with `setAttribute` — inline styles the policy
 * refuses (the terminal then shows no colours, and every refusal is a
 * violation report). The policy does not govern the CSS object model, so
 * `installStyleShim()` carries those two script-only routes over it:
 *
 * - `document.createElement('style')` returns a hidden `<remo-style>`
 *   element whose `textContent` is the text of a constructed
 *   `CSSStyleSheet` adopted by the document (`remove()` drops the sheet);
 * - `setAttribute('style', css)` on an HTML element sets `style.cssText`.
 *
 * This loosens nothing: markup's `<style>` elements and style attributes
 * (what an injection would use) are still refused, and any script the
 * policy lets run could use the object model anyway. Installed once, by
 * the Terminal page, before xterm creates anything.
 */

let installed = false;

export function installStyleShim(doc = document) {
  if (installed) return;
  installed = true;
  const create = Document.prototype.createElement;
  doc.createElement = function createElement(tag, options) {
    if (typeof tag === 'string' && tag.toLowerCase() === 'style') return sheetElement(doc, create);
    return create.call(this, tag, options);
  };
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function shimSetAttribute(name, value) {
    if (typeof name === 'string' && name.toLowerCase() === 'style' && this instanceof HTMLElement) {
      this.style.cssText = String(value);
      return;
    }
    setAttribute.call(this, name, value);
  };
}

/** A stand-in for a script-made `<style>`: its text goes to an adopted sheet. */
function sheetElement(doc, create) {
  const el = create.call(doc, 'remo-style');
  el.hidden = true;
  const sheet = new CSSStyleSheet();
  let text = '';
  Object.defineProperty(el, 'textContent', {
    configurable: true,
    get: () => text,
    set: (v) => {
      text = String(v ?? '');
      sheet.replaceSync(text);
    },
  });
  const remove = el.remove;
  el.remove = () => {
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
    remove.call(el);
  };
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  return el;
}
