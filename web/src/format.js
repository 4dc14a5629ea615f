// Numbers and times as a reader expects them, in the viewer's own locale and time zone.

// Prices as the convention shows them (2 decimals); the read-out keeps the data's precision.
const price = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const exactPrice = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 });
const signed = new Intl.NumberFormat(undefined, {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
  signDisplay: "exceptZero",
});
const whole = new Intl.NumberFormat();
// dateStyle/timeStyle cannot be combined with timeZoneName, so the fields are spelled out;
// the year only when it is not this one.
const momentFields = { month: "short", day: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit", timeZoneName: "short" };
const moment = new Intl.DateTimeFormat(undefined, momentFields);
const momentWithYear = new Intl.DateTimeFormat(undefined, { ...momentFields, year: "numeric" });
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

export const fmtPrice = (value) => (value === null || value === undefined ? "–" : price.format(value));
export const fmtPriceExact = (value) => (value === null || value === undefined ? "–" : exactPrice.format(value));
export const fmtSigned = (value) => (value === null || value === undefined ? "–" : signed.format(value));
export const fmtVolume = (value) => (value === null || value === undefined ? "–" : whole.format(value));
export function fmtMoment(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return (date.getFullYear() === new Date().getFullYear() ? moment : momentWithYear).format(date);
}
export const fmtClock = (date) => clock.format(date);

// "42 s ago", then minutes, hours, days.
export function ago(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export const SYMBOL = /^[A-Za-z][A-Za-z0-9]{0,5}(\.[A-Za-z0-9]{1,3})?$/;

// As the services read a symbol: all lower case is upper-cased (aapl -> AAPL); one
// with any upper-case letter is the vendor's own spelling, kept (KIMpL, a preferred share).
export function normalizeSymbol(raw) {
  const symbol = String(raw).trim();
  return symbol === symbol.toLowerCase() ? symbol.toUpperCase() : symbol;
}
