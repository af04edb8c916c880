"""Identity errors shared by registration, logins and the profile (messages from the manual)."""

from __future__ import annotations

from services.errors import DomainError

HELP_LINE = "8 (800) 775-62-62"
"""The help line named in messages that send the customer to a person."""

# --- errors ---------------------------------------------------------------------------------------------


class InvalidInput(DomainError):
    """Several fields are wrong at once; ``errors`` lists each (the resolver reports every one)."""

    code = "INVALID_INPUT"

    def __init__(self, errors: list[DomainError]) -> None:
        super().__init__(field=errors[0].field, message=errors[0].text)
        self.errors = errors


class InvalidPhone(DomainError):
    """The phone number is not a valid one."""

    code = "PHONE_INVALID"
    message = "Введите корректный номер телефона"


class InvalidEmail(DomainError):
    """The e-mail address is not a valid one."""

    code = "EMAIL_INVALID"
    message = "Введите корректный адрес электронной почты"


class InvalidName(DomainError):
    """A name part has characters other than Russian or Latin letters, hyphen and dash, or is too long."""

    code = "NAME_INVALID"
    message = "Допускаются только русские или латинские буквы, дефис «-» и тире «—», не более 50 символов"


class WeakPassword(DomainError):
    """The password is too weak (length and kinds of characters)."""

    code = "PASSWORD_WEAK"
    message = (
        "Пароль должен содержать не менее 6 символов: латинские заглавные и строчные буквы, цифры "
        "и специальный символ (например, !, $, #, %)"
    )


class PasswordMismatch(DomainError):
    """The password and its confirmation differ."""

    code = "PASSWORD_MISMATCH"
    message = "Пароли не совпадают"


class ConsentRequired(DomainError):
    """Consent to the processing of personal data (152-FZ) was not given."""

    code = "CONSENT_REQUIRED"
    message = "Необходимо дать согласие на обработку персональных данных"


class PhoneTaken(DomainError):
    """A cabinet is already registered with this phone."""

    code = "PHONE_TAKEN"
    message = "На указанный номер уже зарегистрирован личный кабинет. Внесите другой номер телефона."


class EmailTaken(DomainError):
    """A cabinet already uses this e-mail address."""

    code = "EMAIL_TAKEN"
    message = "Указанная электронная почта уже зарегистрирована в личном кабинете. Укажите другой адрес."


class InvalidCredentials(DomainError):
    """Wrong login or password."""

    code = "INVALID_CREDENTIALS"
    message = "Неверный логин или пароль"


class EmailNotConfirmed(DomainError):
    """The e-mail address is not confirmed, so it cannot be used to log in."""

    code = "EMAIL_NOT_CONFIRMED"
    message = (
        "Адрес электронной почты не подтвержден. Войдите по номеру телефона и подтвердите адрес в профиле."
    )


class UnknownPhone(DomainError):
    """No cabinet is registered with this phone."""

    code = "PHONE_NOT_REGISTERED"
    message = (
        "Личный кабинет с указанным номером телефона не найден. Проверьте номер или зарегистрируйтесь. "
        f"Если ошибка повторяется, обратитесь по телефону {HELP_LINE}."
    )


class UnknownEmail(DomainError):
    """No cabinet has this confirmed e-mail address."""

    code = "EMAIL_NOT_REGISTERED"
    message = (
        "Личный кабинет с указанным подтвержденным адресом электронной почты не найден. "
        f"Войдите по номеру телефона или обратитесь по телефону {HELP_LINE}."
    )


class EmailAlreadyConfirmed(DomainError):
    """The e-mail address is confirmed already."""

    code = "EMAIL_ALREADY_CONFIRMED"
    message = "Адрес электронной почты уже подтвержден"


class NoEmail(DomainError):
    """The profile has no e-mail address."""

    code = "EMAIL_MISSING"
    message = "Укажите адрес электронной почты в профиле"


class WrongCurrentPassword(DomainError):
    """The current password given is wrong."""

    code = "CURRENT_PASSWORD_INVALID"
    message = "Текущий пароль указан неверно"


class SameValue(DomainError):
    """The new value equals the current one."""

    code = "NOTHING_TO_CHANGE"
    message = "Новое значение совпадает с текущим"
