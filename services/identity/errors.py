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
    code = "PHONE_INVALID"
    message = "Введите корректный номер телефона"


class InvalidEmail(DomainError):
    code = "EMAIL_INVALID"
    message = "Введите корректный адрес электронной почты"


class InvalidName(DomainError):
    code = "NAME_INVALID"
    message = "Допускаются только русские или латинские буквы, дефис «-» и тире «—», не более 50 символов"


class WeakPassword(DomainError):
    code = "PASSWORD_WEAK"
    message = (
        "Пароль должен содержать не менее 6 символов: латинские заглавные и строчные буквы, цифры "
        "и специальный символ (например, !, $, #, %)"
    )


class PasswordMismatch(DomainError):
    code = "PASSWORD_MISMATCH"
    message = "Пароли не совпадают"


class ConsentRequired(DomainError):
    code = "CONSENT_REQUIRED"
    message = "Необходимо дать согласие на обработку персональных данных"


class PhoneTaken(DomainError):
    code = "PHONE_TAKEN"
    message = "На указанный номер уже зарегистрирован личный кабинет. Внесите другой номер телефона."


class EmailTaken(DomainError):
    code = "EMAIL_TAKEN"
    message = "Указанная электронная почта уже зарегистрирована в личном кабинете. Укажите другой адрес."


class InvalidCredentials(DomainError):
    code = "INVALID_CREDENTIALS"
    message = "Неверный логин или пароль"


class EmailNotConfirmed(DomainError):
    code = "EMAIL_NOT_CONFIRMED"
    message = (
        "Адрес электронной почты не подтвержден. Войдите по номеру телефона и подтвердите адрес в профиле."
    )


class UnknownPhone(DomainError):
    code = "PHONE_NOT_REGISTERED"
    message = (
        "Личный кабинет с указанным номером телефона не найден. Проверьте номер или зарегистрируйтесь. "
        f"Если ошибка повторяется, обратитесь по телефону {HELP_LINE}."
    )


class UnknownEmail(DomainError):
    code = "EMAIL_NOT_REGISTERED"
    message = (
        "Личный кабинет с указанным подтвержденным адресом электронной почты не найден. "
        f"Войдите по номеру телефона или обратитесь по телефону {HELP_LINE}."
    )


class EmailAlreadyConfirmed(DomainError):
    code = "EMAIL_ALREADY_CONFIRMED"
    message = "Адрес электронной почты уже подтвержден"


class NoEmail(DomainError):
    code = "EMAIL_MISSING"
    message = "Укажите адрес электронной почты в профиле"


class WrongCurrentPassword(DomainError):
    code = "CURRENT_PASSWORD_INVALID"
    message = "Текущий пароль указан неверно"


class SameValue(DomainError):
    code = "NOTHING_TO_CHANGE"
    message = "Новое значение совпадает с текущим"
