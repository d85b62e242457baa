-- GET with the load user's session cookie.
wrk.headers["Cookie"] = "access_token=" .. os.getenv("LOAD_TOKEN")
