// The account forms: sign in, sign up, confirm, forgot and reset a password, a new
// password Cognito asks for. Cognito's own answers come as AuthError and are shown here.

import { AuthError } from "../auth.js";
import { show } from "../dom.js";

export class Account {
  constructor({ auth }) {
    this.auth = auth;
    this.box = document.getElementById("auth");
    this.message = document.getElementById("auth-message");
    this.error = document.getElementById("signin-error");
    this.pendingEmail = "";
    this.challenge = null;
    for (const button of this.box.querySelectorAll("[data-go]")) {
      button.addEventListener("click", () => this.view(button.dataset.go));
    }
    this.onSubmit("signin", (f) => this.signIn(f.email.value.trim(), f.password.value));
    this.onSubmit("signup", (f) => this.signUp(f.email.value.trim(), f.password.value));
    this.onSubmit("confirm", (f) => this.confirm(f.code.value.trim()));
    this.onSubmit("forgot", (f) => this.forgot(f.email.value.trim()));
    this.onSubmit("reset", (f) => this.reset(f.code.value.trim(), f.password.value));
    this.onSubmit("newpass", (f) => this.newPassword(f.password.value));
    document.getElementById("confirm-resend").addEventListener("click", () => this.resend());
  }

  onSubmit(id, work) {
    const form = document.getElementById(id);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      show(this.error, "");
      try {
        await work(form.elements);
      } catch (error) {
        if (!(error instanceof AuthError)) throw error;
        if (error.code === "UserNotConfirmedException") {
          this.pendingEmail = form.elements.email?.value.trim() || this.pendingEmail;
          this.view("confirm", "This account's email is not confirmed yet: enter the code we emailed.");
        } else {
          show(this.error, error.message);
        }
      } finally {
        button.disabled = false;
      }
    });
  }

  // Shows one of the forms (signin, signup, confirm, forgot, reset, newpass).
  view(name, message = "") {
    for (const form of this.box.querySelectorAll("form[data-view]")) form.hidden = form.dataset.view !== name;
    this.box.dataset.view = name;
    show(this.message, message);
    show(this.error, "");
    const first = this.box.querySelector(`form[data-view=${name}] input`);
    if (first && name !== "signin") first.focus();
  }

  shown(visible, message = "") {
    this.box.hidden = !visible;
    if (visible) {
      this.view("signin");
      show(this.error, message);
    }
  }

  async signIn(email, password) {
    const step = await this.auth.signIn(email, password);
    if (step.challenge === "NEW_PASSWORD_REQUIRED") {
      this.challenge = { email, session: step.session };
      this.view("newpass");
    } else if (step.challenge) {
      show(this.error, `Cognito asks for ${step.challenge}, which this page cannot do.`);
    }
  }

  async newPassword(password) {
    await this.auth.setNewPassword(this.challenge.email, this.challenge.session, password);
    this.challenge = null;
  }

  async signUp(email, password) {
    const made = await this.auth.signUp(email, password);
    this.pendingEmail = email;
    document.getElementById("signin-email").value = email;
    if (made.confirmed) this.view("signin", "Your account is ready: sign in.");
    else this.view("confirm", `We emailed a confirmation code to ${made.destination}.`);
  }

  async confirm(code) {
    await this.auth.confirmSignUp(this.pendingEmail, code);
    document.getElementById("signin-email").value = this.pendingEmail;
    this.view("signin", "Your email is confirmed: sign in.");
  }

  async resend() {
    try {
      await this.auth.resendCode(this.pendingEmail);
      show(this.message, "We sent a new code.");
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      show(this.error, error.message);
    }
  }

  async forgot(email) {
    await this.auth.forgotPassword(email);
    this.pendingEmail = email;
    this.view("reset");
  }

  async reset(code, password) {
    await this.auth.resetPassword(this.pendingEmail, code, password);
    document.getElementById("signin-email").value = this.pendingEmail;
    this.view("signin", "Your password is changed: sign in with it.");
  }
}
