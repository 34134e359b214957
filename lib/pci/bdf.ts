// PCI addresses as sysfs spells them (domain:bus:device.function, e.g. "0000:00:02.0").

const BDF = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([01][0-9a-f])\.([0-7])$/i;

/** Normalises a PCI address to the domain:bus:device.function form sysfs uses ("0000:00:02.0"). */
export function normaliseBdf(text: string): string | undefined {
  const m = BDF.exec(text.trim());
  if (!m) return undefined;
  return `${(m[1] ?? '0000').toLowerCase()}:${m[2]!.toLowerCase()}:${m[3]!.toLowerCase()}.${m[4]}`;
}
