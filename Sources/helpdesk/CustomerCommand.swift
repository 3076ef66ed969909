import ArgumentParser
import Foundation
import HelpDeskCore
import HelpDeskServer
import PostgresClient

/// `helpdesk customer reset-password`: HelpDesk sends no e-mail, so a customer who forgot its
/// password asks support, and an admin sets a new one here and tells the customer.
struct CustomerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "customer", abstract: "Manage customer accounts.",
                                                    subcommands: [ResetPassword.self])

    struct ResetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-password",
            abstract: "Set a new password for a customer account (a random one, printed, unless --password is given).")

        @Option(help: "The account's e-mail.") var email: String
        @Option(help: "The new password (at least 8 characters); omit it to get a random one.") var password: String?

        func run() async throws {
            let (configuration, logger) = try loadConfiguration()
            let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: logger)
            defer { Task { await pool.shutdown() } }
            let newPassword = password ?? Base64URL.encode(Crypto.randomBytes(12))
            guard try await CustomerAccounts(pool: pool).resetPassword(email: email, password: newPassword) else {
                throw ValidationError("no customer account has the e-mail \(email)")
            }
            print(password == nil ? "new password for \(email): \(newPassword)" : "password of \(email) changed")
        }
    }
}
