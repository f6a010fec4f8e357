"""The password rule (documented in docs/api-guide.md#passwords): it refuses the obvious, in the
spirit of NIST SP 800-63B (length and a blocklist rather than composition rules):

- at least 10 characters (at most 256);
- not one character repeated (`aaaaaaaaaaaa`);
- not the user's email, nor its part before the `@` (case-insensitive);
- not one of the commonly used passwords below (case-insensitive).
"""

from crm_common.errors import FieldError, ProblemError

MIN_LENGTH = 10

# The most common passwords of public breach corpora that reach 10 characters, plus obvious CRM-ish
# ones. A short list on purpose: it stops the guesses an attacker tries first.
COMMON = frozenset(
    """
    1234567890 0123456789 12345678910 123456789a 1234567890a 0987654321 1q2w3e4r5t 1q2w3e4r5t6y
    qwertyuiop qwerty1234 qwerty12345 qwerty123456 1qaz2wsx3edc qazwsxedc123 asdfghjkl1 zxcvbnm123
    password12 password123 password1234 password1! passw0rd123 p@ssw0rd123 p@ssword123 password01
    iloveyou12 iloveyou123 sunshine123 princess123 football123 baseball123 welcome123 welcome1234
    letmein123 monkey1234 dragon1234 master1234 abc1234567 abcdefghij abcdefg123 aaaaaa1111
    administrator admin12345 admin123456 adminadmin changeme123 changeme12 default123 secret1234
    trustno1234 superman123 batman1234 michael123 charlie123 jennifer123 computer12 internet12
    starwars123 whatever12 qwertyuiop1 11111111111 1111111111 2222222222 1212121212 1122334455
    123123123123 1231231234 987654321a 5555555555 6666666666 7777777777 8888888888 9999999999
    0000000000 1234512345 123qweasd123 zaq12wsxcde passwordpassword crmadmin123 salesforce1
    customer123 letmein1234 welcome2024 welcome2025 welcome2026 summer2024 summer2025 summer2026
    winter2024 winter2025 winter2026 spring2025 spring2026 autumn2025 password2024 password2025
    password2026 company123 company1234
    """.split()
)


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """Why `password` is refused (empty when it is acceptable)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"shorter than {MIN_LENGTH} characters")
    if len(set(password)) == 1:
        problems.append("one character repeated")
    lowered = password.lower()
    if email and lowered in {email.lower(), email.lower().partition("@")[0]}:
        problems.append("the user's email")
    if lowered in COMMON:
        problems.append("a commonly used password")
    return problems


def check_password(password: str, *, email: str | None, field: str) -> None:
    """422 `WEAK_PASSWORD` naming each reason, on `field`."""
    problems = password_problems(password, email=email)
    if problems:
        raise ProblemError(
            422,
            "WEAK_PASSWORD",
            f"The password is refused: {'; '.join(problems)}.",
            errors=[FieldError(field=field, message=p, code="weak_password") for p in problems],
        )
