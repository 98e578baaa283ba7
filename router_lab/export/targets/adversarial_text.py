"""The adversarial text set every text router is validated on, in every target runtime.

Prompts where string handling differs between runtimes (locale case folding, Unicode lower-casing
to ASCII, UTF-8 handling of a NUL byte, emoji and combining marks, right-to-left scripts, empty and
very long prompts, stop words between the parts of an n-gram).  The set is fixed (no randomness)
so a target's agreement on it is reproducible; each case has a name for the report.
"""

from __future__ import annotations

STOP_WORDS = "the of and a to in is it"

ADVERSARIAL_TEXTS: tuple[tuple[str, str], ...] = (
    ("empty", ""),
    ("space", " "),
    ("newlines_tabs", "a  b\t\tc\n\nd \xa0 e"),
    ("accents_upper", "ÉCOLE Straße CAFÉ Ñandú Ørsted"),
    ("accents_lower", "école straße café ñandú ørsted"),
    ("combining_marks", "Cafe\u0301 nai\u0308ve re\u0301sume\u0301"),
    ("dotted_capital_i", "İstanbul İ İİ"),  # Python lower(): "i̇" -- ASCII i + a combining dot
    ("kelvin_sign", "\u212aeep the \u212a in \u212aelvin"),  # Unicode lower-cases it to ASCII k
    ("fullwidth", "ＷＨＡＴ ＩＳ ７＋８？"),
    ("emoji", "🙂 ok? 👍🏽 🇫🇷 👨‍👩‍👧 how many apples 🍎🍎🍎"),
    ("cjk", "小明有5个苹果，他吃了2个，还剩几个？"),
    ("japanese_korean", "りんごが3個あります。사과가 세 개 있습니다."),
    ("arabic_rtl", "كم عدد التفاحات إذا كان لدي 5 وأكلت 2؟"),
    ("hebrew_rtl_mixed", "יש לי 5 apples ו-2 oranges, כמה פירות?"),
    ("rtl_override", "price \u202e05.2$\u202c total"),
    ("greek_cyrillic", "ΠΌΣΑ μήλα; Сколько ЯБЛОК?"),
    ("mixed_case", "WhAt Is 7/8 Of 1,000? tHe QuIcK bRoWn FoX"),
    ("all_caps", "WHAT IS 7/8 OF 1,000? HOW MANY PERCENT (50%) COST $2.50?"),
    ("nul_inside", "how many\x00 apples are left?"),
    ("nul_only", "\x00"),
    ("control_chars", "line\x01one\x07\x08two\x1b[31mred\x1b[0m\x7f end"),
    ("zero_width", "app\u200ble\u200d \ufeffsum\u2060 of 3"),
    ("surrogate_range", "\U0001d400\U0001d401 math bold \U0001f600"),
    ("digits_other_scripts", "٣ + ٤ = ? and ३ + ४ and ３"),
    ("stop_words_between", f"how {STOP_WORDS} many {STOP_WORDS} apples {STOP_WORDS} left"),
    ("stop_words_only", STOP_WORDS),
    ("ngram_split_punct", "how-many apples.left?how,many"),
    ("numbers_punct", "Price: $2.50 (50%)! 1,000,000 3/4 0.5 .5 5."),
    ("single_char", "x"),
    ("very_long_ascii", "The QUICK brown fox jumps over 13 lazy dogs. " * 250),
    ("very_long_mixed", ("Ünïcödé 🙂 小明 كم ΣΑΣ \x00 tab\t " * 120)),
)
