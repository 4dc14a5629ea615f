"""Quote service: the latest price of a symbol, on demand."""

from chalicelib.openapi import DOCUMENT, MAX_SYMBOLS
from chalicelib.runtime import QuoteRuntime
from shared.errors import bad_request
from shared.openapi import query_names
from shared.startup import start
from shared.symbols import parse_symbol, parse_symbol_list
from shared.web import ServiceApp, json_response, query_params

start("quote")  # stops here, in one line, without a setting this stage needs
app = ServiceApp("market-quote", "quote", DOCUMENT)
runtime = QuoteRuntime()


@app.route("/api/quote", methods=["GET"])
def get_quote():
    params = query_params(app, query_names(DOCUMENT, "/api/quote", "get"))
    quotes = runtime.quotes
    if "symbols" in params:
        if "symbol" in params:
            raise bad_request("conflicting_parameters", "give either 'symbol' or 'symbols', not both")
        symbols = parse_symbol_list(params.get("symbols"), MAX_SYMBOLS)
        results, errors = quotes.get_many(symbols)
        body = {
            "results": [quotes.decorate(results[s]) for s in symbols if s in results],
            "errors": [{"symbol": s, **errors[s].to_body()["error"]} for s in symbols if s in errors],
        }
        max_age = min((quotes.max_age_s(r) for r in results.values()), default=0)
        return json_response(body, headers={"Cache-Control": f"max-age={max_age}"})
    symbol = parse_symbol(params.get("symbol"))
    result = quotes.get(symbol)
    return json_response(quotes.decorate(result), headers={"Cache-Control": f"max-age={quotes.max_age_s(result)}"})


# The vendor for the functions in the VPC (this app's API, the alerts check, the daily
# update): outside the VPC, so it reaches the vendor over IPv4 or IPv6 alike, invoked
# over Lambda's dual-stack endpoint (shared/vendor_relay.py). The only holder of the key.
@app.lambda_function(name="vendor-relay")
def vendor_relay(event, context):
    return runtime.vendor_relay.handle(event)
