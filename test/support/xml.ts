// A strict reader for the small XML documents the CLI writes (JUnit): elements, attributes in
// quotes, text, the five predefined entities and numeric references, an optional declaration.
// Throws on anything malformed — unbalanced tags, a raw '<' or '&' where it may not be, a
// character XML 1.0 forbids — so that a test can say "this file parses as XML".

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME = /^[A-Za-z_:][\w:.-]*/;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;

function decode(raw: string, where: string): string {
  if (FORBIDDEN.test(raw)) throw new Error(`a character XML forbids in ${where}`);
  return raw.replace(/&([^;]*);|&/g, (_m, ref: string | undefined) => {
    if (ref === undefined) throw new Error(`a bare & in ${where}`);
    if (/^#x[0-9a-f]+$/i.test(ref)) return String.fromCodePoint(parseInt(ref.slice(2), 16));
    if (/^#[0-9]+$/.test(ref)) return String.fromCodePoint(parseInt(ref.slice(1), 10));
    if (!(ref in ENTITIES)) throw new Error(`unknown entity &${ref}; in ${where}`);
    return ENTITIES[ref]!;
  });
}

/** The document's root element; throws with what is wrong. */
export function parseXml(doc: string): XmlElement {
  let at = 0;
  const rest = (): string => doc.slice(at);
  const skipSpace = (): void => {
    while (at < doc.length && /\s/.test(doc[at]!)) at++;
  };
  if (rest().startsWith('<?xml')) {
    const end = doc.indexOf('?>');
    if (end < 0) throw new Error('unterminated declaration');
    at = end + 2;
  }
  const element = (): XmlElement => {
    if (doc[at] !== '<') throw new Error(`expected an element at ${at}`);
    at++;
    const name = NAME.exec(rest())?.[0];
    if (!name) throw new Error(`bad element name at ${at}`);
    at += name.length;
    const el: XmlElement = { name, attrs: {}, children: [], text: '' };
    for (;;) {
      skipSpace();
      if (rest().startsWith('/>')) {
        at += 2;
        return el;
      }
      if (doc[at] === '>') {
        at++;
        break;
      }
      const attr = NAME.exec(rest())?.[0];
      if (!attr) throw new Error(`bad attribute in <${name}> at ${at}`);
      at += attr.length;
      const m = /^\s*=\s*"([^"<]*)"/.exec(rest());
      if (!m) throw new Error(`attribute ${attr} of <${name}> is not a quoted value without '<'`);
      if (attr in el.attrs) throw new Error(`attribute ${attr} twice in <${name}>`);
      el.attrs[attr] = decode(m[1]!, `${name}@${attr}`);
      at += m[0].length;
    }
    for (;;) {
      const lt = doc.indexOf('<', at);
      if (lt < 0) throw new Error(`<${name}> is not closed`);
      el.text += decode(doc.slice(at, lt), `<${name}> text`);
      at = lt;
      if (rest().startsWith(`</${name}>`)) {
        at += name.length + 3;
        return el;
      }
      if (rest().startsWith('</')) throw new Error(`</…> closes something other than <${name}> at ${at}`);
      el.children.push(element());
    }
  };
  skipSpace();
  const root = element();
  skipSpace();
  if (at !== doc.length) throw new Error('content after the root element');
  return root;
}

/** Every element named `name` under `el` (depth first). */
export function findAll(el: XmlElement, name: string): XmlElement[] {
  return [...(el.name === name ? [el] : []), ...el.children.flatMap((c) => findAll(c, name))];
}
