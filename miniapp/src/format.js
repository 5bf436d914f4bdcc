// How numbers and times read in Vietnamese: "8,25", "1.150.321", "08:00 ngày 12/07/2026".

/** A score as the ministry prints it: two decimals at most, decimal comma ("8,25", "9", "7,5"). */
export function score(value) {
  return (Math.round(value * 100) / 100).toString().replace(".", ",");
}

/** A count with dots between thousands. */
export function count(value) {
  return String(Math.trunc(value)).replace(/\B(?=(\d{3})+(?!\d))/g, ".");
}

const two = (n) => String(n).padStart(2, "0");

/** An ISO time shown in Vietnam time (UTC+7), whatever the phone's zone. */
export function vietnamTime(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const v = new Date(t.getTime() + 7 * 3600 * 1000);
  return (
    `${two(v.getUTCHours())}:${two(v.getUTCMinutes())} ngày ` +
    `${two(v.getUTCDate())}/${two(v.getUTCMonth() + 1)}/${v.getUTCFullYear()}`
  );
}

/** "top 4,5%": the share at the candidate's place or above, rounded up to a tenth (as the
 * web pages and the chatbot say it, so nobody reads "top 0%"). */
export function topPercent(rank) {
  const share = Math.ceil(((rank.higher + 1) * 1000) / rank.of) / 10;
  return `top ${score(share)}%`;
}
