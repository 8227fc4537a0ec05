package rfc9111

import "time"

// This file parses HTTP-dates (RFC 9110 §5.6.7) exactly as the grammar
// says, with one leniency. Go's http.ParseTime is not used: it is built on
// time.Parse, which accepts a one-digit hour, runs of spaces where the
// grammar has one SP, day and month names in any case and any zone
// abbreviation in the RFC 850 form. Accepting those would turn an invalid
// Expires into a freshness lifetime, while RFC 9111 §5.3 says a cache
// MUST treat an invalid Expires as already expired.
//
// Accepted, as RFC 9110 §5.6.7 requires of recipients:
//
//	IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT
//	rfc850-date  = day-name-l "," SP date2 SP time-of-day SP GMT
//	asctime-date = day-name SP date3 SP time-of-day SP year
//
// with date1 = 2DIGIT SP month SP 4DIGIT, date2 = 2DIGIT "-" month "-"
// 2DIGIT, date3 = month SP ( 2DIGIT / ( SP DIGIT ) ) and time-of-day =
// 2DIGIT ":" 2DIGIT ":" 2DIGIT (00:00:00 - 23:59:60, the 60 only in a leap
// second 23:59:60). Names are case-sensitive, except that GMT is accepted
// in any case ("gmt"): §5.6.7 encourages recipients to be robust where the
// field definition does not restrict it, and the zone is the one part whose
// case carries no meaning. The day name is not checked against the date.

// parseDate parses an HTTP-date. A two-digit rfc850-date year is placed in
// 1969–2068; use parseDateAt when the time of receipt is known.
func parseDate(s string) (time.Time, bool) { return parseDateAt(s, time.Time{}) }

// parseDateAt parses an HTTP-date received at ref. A two-digit
// rfc850-date year is interpreted as RFC 9110 §5.6.7 requires: a date
// more than 50 years after ref is taken to be in the most recent past year
// with the same last two digits. If ref is zero, the year is placed in
// 1969–2068.
func parseDateAt(s string, ref time.Time) (time.Time, bool) {
	if t, ok := parseIMFFixdate(s); ok {
		return t, true
	}
	switch {
	case len(s) == 24 && s[3] == ' ':
		return parseASCTime(s)
	case len(s) >= 30 && s[len(s)-24] == ',':
		return parseRFC850(s, ref)
	}
	return time.Time{}, false
}

// parseIMFFixdate parses exactly "Sun, 06 Nov 1994 08:49:37 GMT" (GMT in
// any case).
func parseIMFFixdate(s string) (time.Time, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || !isGMT(s[25:]) || !isDayName(s[:3]) {
		return time.Time{}, false
	}
	month, ok := monthOf(s[8:11])
	if !ok {
		return time.Time{}, false
	}
	day, ok := digits(s[5:7])
	if !ok {
		return time.Time{}, false
	}
	year, ok := digits(s[12:16])
	if !ok {
		return time.Time{}, false
	}
	return dateOf(year, month, day, s[17:25])
}

// parseRFC850 parses "Sunday, 06-Nov-94 08:49:37 GMT" (GMT in any case).
func parseRFC850(s string, ref time.Time) (time.Time, bool) {
	n := len(s) - 24 // length of the day name
	rest := s[n:]    // ", 06-Nov-94 08:49:37 GMT"
	if !isLongDayName(s[:n]) || rest[0] != ',' || rest[1] != ' ' || rest[4] != '-' || rest[8] != '-' ||
		rest[11] != ' ' || !isGMT(rest[20:]) {
		return time.Time{}, false
	}
	month, ok := monthOf(rest[5:8])
	if !ok {
		return time.Time{}, false
	}
	day, ok := digits(rest[2:4])
	if !ok {
		return time.Time{}, false
	}
	yy, ok := digits(rest[9:11])
	if !ok {
		return time.Time{}, false
	}
	var year int
	if ref.IsZero() {
		year = 2000 + yy
		if yy >= 69 {
			year = 1900 + yy
		}
	} else {
		// The latest year ending in yy whose date is at most 50 years
		// after ref (RFC 9110 §5.6.7).
		midnight := time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)
		clock, ok := dateOf(2000, time.January, 1, rest[12:20])
		if !ok {
			return time.Time{}, false
		}
		limit := ref.AddDate(50, 0, 0)
		at := func(y int) time.Time {
			return time.Date(y, month, day, 0, 0, 0, 0, time.UTC).Add(clock.Sub(midnight))
		}
		year = ref.Year() - ref.Year()%100 + yy
		for at(year).After(limit) {
			year -= 100
		}
		for !at(year + 100).After(limit) {
			year += 100
		}
	}
	return dateOf(year, month, day, rest[12:20])
}

// parseASCTime parses "Sun Nov  6 08:49:37 1994" (or "Sun Nov 16 ...").
func parseASCTime(s string) (time.Time, bool) {
	if !isDayName(s[:3]) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
		return time.Time{}, false
	}
	month, ok := monthOf(s[4:7])
	if !ok {
		return time.Time{}, false
	}
	d := s[8:10]
	if d[0] == ' ' {
		d = d[1:] // ( SP DIGIT )
	}
	day, ok := digits(d)
	if !ok {
		return time.Time{}, false
	}
	year, ok := digits(s[20:24])
	if !ok {
		return time.Time{}, false
	}
	return dateOf(year, month, day, s[11:19])
}

// dateOf checks the time-of-day "08:49:37" and the day of the month and
// returns the time in UTC. A leap second (23:59:60) is the first second of
// the next day, as time.Date normalises it.
func dateOf(year int, month time.Month, day int, tod string) (time.Time, bool) {
	if tod[2] != ':' || tod[5] != ':' {
		return time.Time{}, false
	}
	hour, ok1 := digits(tod[0:2])
	minute, ok2 := digits(tod[3:5])
	sec, ok3 := digits(tod[6:8])
	if !ok1 || !ok2 || !ok3 || day < 1 || hour > 23 || minute > 59 || sec > 60 ||
		(sec == 60 && (hour != 23 || minute != 59)) {
		return time.Time{}, false
	}
	if sec == 60 {
		t := time.Date(year, month, day, hour, minute, 59, 0, time.UTC)
		if t.Day() != day { // e.g. 31 Feb
			return time.Time{}, false
		}
		return t.Add(time.Second), true
	}
	t := time.Date(year, month, day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, false
	}
	return t, true
}

// digits parses a non-empty run of ASCII digits.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// isGMT reports whether s is " GMT", the zone in any case.
func isGMT(s string) bool {
	return len(s) == 4 && s[0] == ' ' && s[1]|0x20 == 'g' && s[2]|0x20 == 'm' && s[3]|0x20 == 't'
}

func isDayName(s string) bool {
	switch s {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
		return true
	}
	return false
}

func isLongDayName(s string) bool {
	switch s {
	case "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday":
		return true
	}
	return false
}

func monthOf(s string) (time.Month, bool) {
	switch s {
	case "Jan":
		return time.January, true
	case "Feb":
		return time.February, true
	case "Mar":
		return time.March, true
	case "Apr":
		return time.April, true
	case "May":
		return time.May, true
	case "Jun":
		return time.June, true
	case "Jul":
		return time.July, true
	case "Aug":
		return time.August, true
	case "Sep":
		return time.September, true
	case "Oct":
		return time.October, true
	case "Nov":
		return time.November, true
	case "Dec":
		return time.December, true
	}
	return 0, false
}
