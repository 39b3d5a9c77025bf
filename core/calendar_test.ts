import assert from "node:assert/strict";
import {
  addDays,
  CALENDAR_YEARS,
  earlyClosesOf,
  exchangeDate,
  holidaysOf,
  isTradingDay,
  isValidDate,
  nextTradingDay,
  previousTradingDay,
  sessionAt,
  tradingDays,
  tradingSession,
  weekday,
  zonedTime,
} from "./calendar.ts";

const iso = (ts: number | undefined) => ts === undefined ? undefined : new Date(ts).toISOString();
const at = (text: string) => Date.parse(text);
const datesOf = (year: number) => holidaysOf(year).map((holiday) => holiday.date);

function sessionIso(date: string) {
  const session = tradingSession(date);
  assert.ok(session, `${date} should be a trading day`);
  return {
    preOpen: iso(session.preOpen),
    open: iso(session.open),
    close: iso(session.close),
    postClose: iso(session.postClose),
    earlyClose: session.earlyClose,
  };
}

// Easter after Gauss, written independently of the computus in calendar.ts.
function gaussEaster(year: number): string {
  const a = year % 19;
  const b = year % 4;
  const c = year % 7;
  const k = Math.floor(year / 100);
  const p = Math.floor((13 + 8 * k) / 25);
  const q = Math.floor(k / 4);
  const m = (15 - p + k - q) % 30;
  const n = (4 + k - q) % 7;
  const d = (19 * a + m) % 30;
  const e = (2 * b + 4 * c + 6 * d + n) % 7;
  let march = 22 + d + e;
  if (d === 29 && e === 6) march = 19 + 31;
  else if (d === 28 && e === 6 && (11 * m + 11) % 30 < 19) march = 18 + 31;
  const date = new Date(Date.UTC(year, 2, march));
  return date.toISOString().slice(0, 10);
}

function thursdaysOfNovember(year: number): string[] {
  const days: string[] = [];
  for (let day = 1; day <= 30; day++) {
    const date = new Date(Date.UTC(year, 10, day));
    if (date.getUTCDay() === 4) days.push(date.toISOString().slice(0, 10));
  }
  return days;
}

// providers/README.md, "Dates 2024-2026", as NYSE announced them.
const TABLE: Record<number, { holidays: string[]; earlyCloses: string[]; tradingDays: number }> = {
  2024: {
    holidays: [
      "2024-01-01",
      "2024-01-15",
      "2024-02-19",
      "2024-03-29",
      "2024-05-27",
      "2024-06-19",
      "2024-07-04",
      "2024-09-02",
      "2024-11-28",
      "2024-12-25",
    ],
    earlyCloses: ["2024-07-03", "2024-11-29", "2024-12-24"],
    tradingDays: 252,
  },
  2025: {
    holidays: [
      "2025-01-01",
      "2025-01-09",
      "2025-01-20",
      "2025-02-17",
      "2025-04-18",
      "2025-05-26",
      "2025-06-19",
      "2025-07-04",
      "2025-09-01",
      "2025-11-27",
      "2025-12-25",
    ],
    earlyCloses: ["2025-07-03", "2025-11-28", "2025-12-24"],
    tradingDays: 250,
  },
  2026: {
    holidays: [
      "2026-01-01",
      "2026-01-19",
      "2026-02-16",
      "2026-04-03",
      "2026-05-25",
      "2026-06-19",
      "2026-07-03",
      "2026-09-07",
      "2026-11-26",
      "2026-12-25",
    ],
    earlyCloses: ["2026-11-27", "2026-12-24"],
    tradingDays: 251,
  },
};

for (const [year, expected] of Object.entries(TABLE).map(([y, e]) => [Number(y), e] as const)) {
  Deno.test(`holidaysOf() matches the NYSE announcement for ${year}`, () => {
    assert.deepEqual(datesOf(year), expected.holidays);
    for (const date of expected.holidays) {
      assert.equal(isTradingDay(date), false, date);
      assert.equal(tradingSession(date), undefined, date);
    }
  });

  Deno.test(`earlyClosesOf() matches the NYSE announcement for ${year}`, () => {
    assert.deepEqual(earlyClosesOf(year), expected.earlyCloses);
    for (const date of expected.earlyCloses) {
      assert.equal(tradingSession(date)?.earlyClose, true, date);
    }
  });

  Deno.test(`tradingDays() counts ${expected.tradingDays} sessions in ${year}`, () => {
    const days = tradingDays(`${year}-01-01`, `${year}-12-31`);
    assert.equal(days.length, expected.tradingDays);
    const early = days.filter((date) => tradingSession(date)?.earlyClose);
    assert.deepEqual(early, expected.earlyCloses);
  });
}

Deno.test("holidaysOf() names each 2024 holiday", () => {
  assert.deepEqual(holidaysOf(2024).map((holiday) => holiday.name), [
    "New Year's Day",
    "Martin Luther King Jr. Day",
    "Washington's Birthday",
    "Good Friday",
    "Memorial Day",
    "Juneteenth National Independence Day",
    "Independence Day",
    "Labor Day",
    "Thanksgiving Day",
    "Christmas Day",
  ]);
});

Deno.test("holidaysOf() lists the 2025 Carter day of mourning", () => {
  const carter = holidaysOf(2025).find((holiday) => holiday.date === "2025-01-09");
  assert.ok(carter);
  assert.match(carter.name, /Carter/);
  assert.equal(isTradingDay("2025-01-08"), true);
  assert.equal(isTradingDay("2025-01-09"), false);
  assert.equal(nextTradingDay("2025-01-08"), "2025-01-10");
});

Deno.test("holidaysOf() returns copies the caller can change", () => {
  holidaysOf(2024)[0].date = "2024-01-02";
  holidaysOf(2024).pop();
  assert.equal(holidaysOf(2024)[0].date, "2024-01-01");
  assert.equal(holidaysOf(2024).length, 10);
});

Deno.test("holidaysOf() observes 2026 Independence Day on Friday July 3 with no July early close", () => {
  const july = holidaysOf(2026).find((holiday) => holiday.date.startsWith("2026-07"));
  assert.deepEqual(july, { date: "2026-07-03", name: "Independence Day (observed)" });
  assert.equal(earlyClosesOf(2026).some((date) => date.startsWith("2026-07")), false);
  assert.deepEqual(sessionIso("2026-07-02"), {
    preOpen: "2026-07-02T08:00:00.000Z",
    open: "2026-07-02T13:30:00.000Z",
    close: "2026-07-02T20:00:00.000Z",
    postClose: "2026-07-03T00:00:00.000Z",
    earlyClose: false,
  });
  assert.equal(nextTradingDay("2026-07-02"), "2026-07-06");
});

Deno.test("holidaysOf() does not observe a Saturday New Year's Day (NYSE Rule 7.2)", () => {
  assert.equal(weekday("2022-01-01"), 6);
  assert.equal(isTradingDay("2021-12-31"), true);
  assert.equal(tradingSession("2021-12-31")?.earlyClose, false);
  assert.equal(datesOf(2021).includes("2021-12-31"), false);
  assert.equal(datesOf(2022).some((date) => date <= "2022-01-03"), false);
  assert.equal(isTradingDay("2010-12-31"), true); // 2011-01-01 was a Saturday too
  // A Sunday New Year's Day moves to Monday.
  assert.deepEqual(holidaysOf(2023)[0], { date: "2023-01-02", name: "New Year's Day (observed)" });
});

Deno.test("holidaysOf() moves a Saturday Christmas to Friday and a Sunday Juneteenth to Monday", () => {
  assert.equal(datesOf(2021).includes("2021-12-24"), true);
  assert.equal(earlyClosesOf(2021).includes("2021-12-24"), false);
  assert.equal(datesOf(2022).includes("2022-06-20"), true);
  assert.equal(datesOf(2022).includes("2022-12-26"), true);
});

Deno.test("tradingSession() opens at 14:30Z in winter and 13:30Z in summer around each DST switch", () => {
  // [spring switch Sunday, autumn switch Sunday] per section 11.3.
  const switches = [["2024-03-10", "2024-11-03"], ["2025-03-09", "2025-11-02"], [
    "2026-03-08",
    "2026-11-01",
  ]];
  for (const [spring, autumn] of switches) {
    assert.equal(weekday(spring), 0);
    assert.equal(weekday(autumn), 0);
    assert.equal(tradingSession(spring), undefined);
    assert.equal(tradingSession(autumn), undefined);
    const friday = (sunday: string) => addDays(sunday, -2);
    const monday = (sunday: string) => addDays(sunday, 1);
    assert.equal(iso(tradingSession(friday(spring))?.open), `${friday(spring)}T14:30:00.000Z`);
    assert.deepEqual(sessionIso(monday(spring)), {
      preOpen: `${monday(spring)}T08:00:00.000Z`,
      open: `${monday(spring)}T13:30:00.000Z`,
      close: `${monday(spring)}T20:00:00.000Z`,
      postClose: `${addDays(monday(spring), 1)}T00:00:00.000Z`,
      earlyClose: false,
    });
    assert.equal(iso(tradingSession(friday(autumn))?.open), `${friday(autumn)}T13:30:00.000Z`);
    assert.deepEqual(sessionIso(monday(autumn)), {
      preOpen: `${monday(autumn)}T09:00:00.000Z`,
      open: `${monday(autumn)}T14:30:00.000Z`,
      close: `${monday(autumn)}T21:00:00.000Z`,
      postClose: `${addDays(monday(autumn), 1)}T01:00:00.000Z`,
      earlyClose: false,
    });
  }
});

Deno.test("zonedTime() resolves wall times on the DST switch days themselves", () => {
  assert.equal(iso(zonedTime("2024-03-10", "01:59")), "2024-03-10T06:59:00.000Z");
  assert.equal(iso(zonedTime("2024-03-10", "03:00")), "2024-03-10T07:00:00.000Z");
  // 02:30 does not exist on the spring day: read as 02:30 EST, which is 03:30 EDT.
  assert.equal(iso(zonedTime("2024-03-10", "02:30")), "2024-03-10T07:30:00.000Z");
  // 01:30 happens twice on the autumn day: the first (EDT) one is taken.
  assert.equal(iso(zonedTime("2024-11-03", "01:30")), "2024-11-03T05:30:00.000Z");
  assert.equal(iso(zonedTime("2024-11-03", "02:00")), "2024-11-03T07:00:00.000Z");
  assert.equal(iso(zonedTime("2025-11-02", "04:00")), "2025-11-02T09:00:00.000Z");
  assert.equal(iso(zonedTime("2026-03-08", "04:00")), "2026-03-08T08:00:00.000Z");
  assert.equal(iso(zonedTime("2024-12-31", "23:59")), "2025-01-01T04:59:00.000Z");
});

Deno.test("zonedTime() rejects malformed times", () => {
  for (const time of ["9:30", "24:00", "09:60", "0930", "09:30:00"]) {
    assert.throws(() => zonedTime("2024-03-01", time), {
      name: "TypeError",
      message: `Invalid time "${time}": expected HH:MM`,
    });
  }
});

Deno.test("tradingSession() closes an early-close day at 13:00 with post-market until 17:00", () => {
  assert.deepEqual(sessionIso("2024-11-29"), {
    preOpen: "2024-11-29T09:00:00.000Z",
    open: "2024-11-29T14:30:00.000Z",
    close: "2024-11-29T18:00:00.000Z",
    postClose: "2024-11-29T22:00:00.000Z",
    earlyClose: true,
  });
  assert.equal(iso(tradingSession("2024-07-03")?.close), "2024-07-03T17:00:00.000Z");
  assert.equal(iso(tradingSession("2025-12-24")?.postClose), "2025-12-24T22:00:00.000Z");
});

Deno.test("tradingSession() returns the same cached session for repeated calls", () => {
  const first = tradingSession("2024-05-01");
  assert.equal(tradingSession("2024-05-01"), first);
  assert.ok(Object.isFrozen(first));
});

Deno.test("sessionAt() tells pre, regular and post from closed instants", () => {
  const cases: Array<[string, string | undefined]> = [
    ["2024-11-29T08:59:59.999Z", undefined],
    ["2024-11-29T09:00:00.000Z", "pre"],
    ["2024-11-29T14:29:59.999Z", "pre"],
    ["2024-11-29T14:30:00.000Z", "regular"],
    ["2024-11-29T17:59:00.000Z", "regular"],
    ["2024-11-29T18:00:00.000Z", "post"],
    ["2024-11-29T21:59:59.999Z", "post"],
    ["2024-11-29T22:00:00.000Z", undefined],
    ["2024-07-01T13:29:00.000Z", "pre"],
    ["2024-07-01T13:30:00.000Z", "regular"],
    ["2024-07-01T19:59:00.000Z", "regular"],
    ["2024-07-01T23:59:00.000Z", "post"],
    ["2024-07-02T00:00:00.000Z", undefined],
    ["2024-11-28T15:00:00.000Z", undefined], // Thanksgiving
    ["2024-11-30T15:00:00.000Z", undefined], // Saturday
  ];
  for (const [instant, expected] of cases) assert.equal(sessionAt(at(instant)), expected, instant);
});

Deno.test("exchangeDate() switches date at New York midnight in both offsets", () => {
  assert.equal(exchangeDate(at("2024-01-02T04:59:59.999Z")), "2024-01-01");
  assert.equal(exchangeDate(at("2024-01-02T05:00:00.000Z")), "2024-01-02");
  assert.equal(exchangeDate(at("2024-07-02T03:59:59.999Z")), "2024-07-01");
  assert.equal(exchangeDate(at("2024-07-02T04:00:00.000Z")), "2024-07-02");
  assert.equal(exchangeDate(at("2024-03-11T03:59:00.000Z")), "2024-03-10");
  assert.equal(exchangeDate(at("2024-11-04T04:30:00.000Z")), "2024-11-03");
  assert.equal(exchangeDate(at("2101-01-01T04:59:00.000Z")), "2100-12-31");
  assert.equal(exchangeDate(at("1990-01-01T05:00:00.000Z")), "1990-01-01");
});

Deno.test("holidaysOf() skips Martin Luther King Jr. Day before 1998", () => {
  assert.deepEqual(datesOf(1990), [
    "1990-01-01",
    "1990-02-19",
    "1990-04-13",
    "1990-05-28",
    "1990-07-04",
    "1990-09-03",
    "1990-11-22",
    "1990-12-25",
  ]);
  assert.equal(isTradingDay("1990-01-15"), true);
  assert.equal(isTradingDay("1997-01-20"), true);
  assert.equal(isTradingDay("1998-01-19"), false);
});

Deno.test("tradingSession() closes the early-close days before 1993 at 14:00", () => {
  assert.deepEqual(earlyClosesOf(1990), ["1990-12-24"]);
  assert.deepEqual(earlyClosesOf(1991), ["1991-12-24"]);
  assert.deepEqual(earlyClosesOf(1992), ["1992-11-27", "1992-12-24"]);
  assert.equal(iso(tradingSession("1990-12-24")?.close), "1990-12-24T19:00:00.000Z");
  assert.equal(iso(tradingSession("1992-11-27")?.close), "1992-11-27T19:00:00.000Z");
  assert.equal(iso(tradingSession("1993-11-26")?.close), "1993-11-26T18:00:00.000Z");
});

Deno.test("earlyClosesOf() follows the historical July rules", () => {
  // No July 3 early close before 1995.
  assert.equal(earlyClosesOf(1991).some((date) => date.startsWith("1991-07")), false);
  assert.equal(earlyClosesOf(1995).includes("1995-07-03"), true); // Monday
  // Thursday Independence Day before 2013: Friday July 5 closed early, not Wednesday July 3.
  assert.equal(earlyClosesOf(1996).includes("1996-07-05"), true);
  assert.equal(earlyClosesOf(1996).includes("1996-07-03"), false);
  assert.equal(earlyClosesOf(2002).includes("2002-07-05"), true);
  assert.equal(earlyClosesOf(2013).includes("2013-07-03"), true);
  assert.equal(earlyClosesOf(2013).includes("2013-07-05"), false);
  assert.equal(earlyClosesOf(2019).includes("2019-07-03"), true);
  // The day after Thanksgiving closes early only since 1992.
  assert.equal(tradingSession("1991-11-29")?.earlyClose, false);
});

Deno.test("earlyClosesOf() includes the ad hoc 1997, 1999 and 2003 early closes", () => {
  assert.equal(earlyClosesOf(1997).includes("1997-12-26"), true);
  assert.equal(earlyClosesOf(1999).includes("1999-12-31"), true);
  assert.equal(earlyClosesOf(2003).includes("2003-12-26"), true);
  assert.equal(earlyClosesOf(2008).includes("2008-12-26"), false);
});

Deno.test("holidaysOf() lists the special closures since 1990", () => {
  const special = [
    "1994-04-27",
    "2001-09-11",
    "2001-09-12",
    "2001-09-13",
    "2001-09-14",
    "2004-06-11",
    "2007-01-02",
    "2012-10-29",
    "2012-10-30",
    "2018-12-05",
    "2025-01-09",
  ];
  for (const date of special) {
    assert.equal(datesOf(Number(date.slice(0, 4))).includes(date), true, date);
    assert.equal(isTradingDay(date), false, date);
  }
  assert.equal(nextTradingDay("2001-09-10"), "2001-09-17");
  assert.equal(previousTradingDay("2012-10-31"), "2012-10-26");
});

Deno.test("holidaysOf() puts Good Friday two days before Easter for every year", () => {
  for (let year = CALENDAR_YEARS.first; year <= CALENDAR_YEARS.last; year++) {
    const goodFriday = addDays(gaussEaster(year), -2);
    const found = holidaysOf(year).find((holiday) => holiday.name === "Good Friday");
    assert.equal(found?.date, goodFriday, String(year));
  }
});

Deno.test("holidaysOf() computes 2099 from the rules", () => {
  const holidays = holidaysOf(2099);
  const dateOf = (name: string) => holidays.find((holiday) => holiday.name.startsWith(name))?.date;
  assert.equal(gaussEaster(2099), "2099-04-12");
  assert.equal(dateOf("Good Friday"), "2099-04-10");
  assert.equal(dateOf("Thanksgiving Day"), thursdaysOfNovember(2099)[3]);
  assert.equal(dateOf("Thanksgiving Day"), "2099-11-26");
  assert.equal(dateOf("Independence Day"), "2099-07-03"); // July 4, 2099 is a Saturday
  assert.equal(dateOf("Juneteenth"), "2099-06-19");
  assert.deepEqual(earlyClosesOf(2099), ["2099-11-27", "2099-12-24"]);
  assert.equal(tradingDays("2099-01-01", "2099-12-31").length, 251);
});

Deno.test("holidaysOf() stays consistent for every supported year", () => {
  let total = 0;
  for (let year = CALENDAR_YEARS.first; year <= CALENDAR_YEARS.last; year++) {
    const dates = datesOf(year);
    assert.deepEqual(dates, [...dates].sort(), String(year));
    for (const date of dates) {
      assert.ok(date.startsWith(`${year}-`) && weekday(date) >= 1 && weekday(date) <= 5, date);
    }
    for (const date of earlyClosesOf(year)) assert.equal(isTradingDay(date), true, date);
    const count = tradingDays(`${year}-01-01`, `${year}-12-31`).length;
    assert.ok(count >= 248 && count <= 254, `${year}: ${count}`);
    assert.equal(
      thursdaysOfNovember(year)[3],
      holidaysOf(year).find((holiday) => holiday.name === "Thanksgiving Day")?.date,
    );
    total += count;
  }
  assert.equal(tradingDays("1990-01-01", "2100-12-31").length, total);
});

Deno.test("tradingDays() includes both ends and rejects an inverted range", () => {
  assert.deepEqual(tradingDays("2024-12-24", "2025-01-02"), [
    "2024-12-24",
    "2024-12-26",
    "2024-12-27",
    "2024-12-30",
    "2024-12-31",
    "2025-01-02",
  ]);
  assert.deepEqual(tradingDays("2024-12-25", "2024-12-25"), []);
  assert.throws(() => tradingDays("2024-12-31", "2024-01-01"), RangeError);
});

Deno.test("nextTradingDay() and previousTradingDay() skip weekends and holidays", () => {
  assert.equal(nextTradingDay("2024-12-31"), "2025-01-02");
  assert.equal(nextTradingDay("2024-03-28"), "2024-04-01");
  assert.equal(previousTradingDay("2024-04-01"), "2024-03-28");
  assert.equal(previousTradingDay("2024-03-30"), "2024-03-28");
  assert.throws(() => nextTradingDay("2100-12-31"), {
    name: "RangeError",
    message: "Cannot find the NYSE trading day after 2100-12-31: supported years are 1990-2100",
  });
  assert.throws(() => previousTradingDay("1990-01-02"), RangeError);
});

Deno.test("addDays() and weekday() do plain calendar arithmetic", () => {
  assert.equal(addDays("2024-02-28", 1), "2024-02-29");
  assert.equal(addDays("2024-03-01", -1), "2024-02-29");
  assert.equal(addDays("2023-03-01", -1), "2023-02-28");
  assert.equal(addDays("2024-12-31", 1), "2025-01-01");
  assert.equal(addDays("2024-01-01", 366), "2025-01-01");
  assert.equal(addDays("2024-01-01", 0), "2024-01-01");
  assert.equal(weekday("2024-01-01"), 1);
  assert.equal(weekday("2024-03-10"), 0);
  assert.equal(weekday("2022-01-01"), 6);
  assert.equal(weekday("1970-01-01"), 4);
  assert.throws(() => addDays("2024-01-01", 1.5), RangeError);
});

Deno.test("isValidDate() accepts only real YYYY-MM-DD dates", () => {
  for (const date of ["2024-02-29", "2000-02-29", "2024-12-31", "1990-01-01"]) {
    assert.equal(isValidDate(date), true, date);
  }
  for (
    const date of [
      "2024-02-30",
      "2023-02-29",
      "1900-02-29",
      "2100-02-29",
      "2024-13-01",
      "2024-00-10",
      "2024-04-31",
      "20240301",
      "2024-3-01",
      " 2024-03-01",
      "2024-03-01T00:00",
      "",
    ]
  ) {
    assert.equal(isValidDate(date), false, date);
  }
});

Deno.test("calendar functions reject invalid dates with a TypeError", () => {
  for (const date of ["2024-02-30", "2024-13-01", "20240301"]) {
    const error = { name: "TypeError", message: `Invalid date "${date}": expected YYYY-MM-DD` };
    assert.throws(() => tradingSession(date), error);
    assert.throws(() => isTradingDay(date), error);
    assert.throws(() => tradingDays(date, "2024-12-31"), error);
    assert.throws(() => nextTradingDay(date), error);
    assert.throws(() => zonedTime(date, "09:30"), error);
    assert.throws(() => weekday(date), error);
    assert.throws(() => addDays(date, 1), error);
  }
});

Deno.test("calendar functions reject years outside 1990-2100 with a RangeError", () => {
  assert.throws(() => holidaysOf(2150), {
    name: "RangeError",
    message: "Cannot compute the NYSE calendar for 2150: supported years are 1990-2100",
  });
  assert.throws(() => holidaysOf(1989), RangeError);
  assert.throws(() => earlyClosesOf(2101), RangeError);
  assert.throws(() => holidaysOf(2024.5), RangeError);
  assert.throws(() => tradingSession("2101-01-01"), {
    name: "RangeError",
    message: "Cannot compute the NYSE calendar for 2101-01-01: supported years are 1990-2100",
  });
  assert.throws(() => isTradingDay("1989-12-29"), RangeError);
  assert.throws(() => tradingDays("1989-12-01", "1990-01-31"), RangeError);
  assert.throws(() => zonedTime("2150-01-01", "09:30"), RangeError);
  assert.throws(() => exchangeDate(at("1990-01-01T04:59:00Z")), {
    name: "RangeError",
    message: "Cannot compute the NYSE calendar for 1989-12-31: supported years are 1990-2100",
  });
  assert.throws(() => exchangeDate(at("2150-06-01T12:00:00Z")), RangeError);
  assert.throws(() => sessionAt(at("2150-06-01T12:00:00Z")), RangeError);
  assert.throws(() => exchangeDate(NaN), TypeError);
  assert.equal(holidaysOf(1990).length, 8);
  assert.equal(holidaysOf(2100).length, 10);
});
